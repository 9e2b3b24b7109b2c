//! The document guard: bounds a GraphQL document's size and shape *before* it is
//! parsed or validated, in time linear in its text.
//!
//! Why this exists: async-graphql walks fragment spreads without memoising them, both
//! in its recursion-depth check (which runs right after parsing) and in the depth and
//! complexity visitors of validation. A 1.3 KB document whose fragments each spread
//! the previous one twice expands to 2^26 or more selections, and those walks then ran
//! for minutes on a runtime worker without yielding. Here:
//!
//! 1. [`scan`] counts lexical tokens and bracket nesting over the raw text (no
//!    allocation) and stops at the first excess, so neither the parser's memory nor
//!    its recursion can be driven by a client;
//! 2. [`check`] walks the parsed document once, summarising every fragment once
//!    (memoised), and computes what validation would see after spreading: fields,
//!    aliases, root fields, nesting depth, directives per selection. Counts saturate
//!    and the walk stops at the first limit exceeded, so a fragment bomb is refused in
//!    microseconds.
//!
//! Only then does async-graphql parse-check and validate, over a document whose
//! expanded size is bounded by `max_fields`.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// The bounds an operation's document must stay within: checked before validation
/// (`guard`: tokens, fields, aliases, root fields, directives) and before anything
/// runs (`cost`: list lengths, upstream calls). `[limits]` in the server's
/// configuration, which explains each to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Lexical tokens a document may have; counted before parsing.
    pub max_tokens: usize,
    /// Fields an operation selects with every fragment spread; counted before
    /// validation, with an early exit.
    pub max_fields: usize,
    /// Aliased fields per operation, fragments spread.
    pub max_aliases: usize,
    /// Top-level fields per operation, fragments spread.
    pub max_root_fields: usize,
    /// Directives on one selection.
    pub max_directives_per_field: usize,
    /// Longest list argument (`imeis`, `ids`) and largest `first`.
    pub max_list_length: usize,
    /// Upstream calls one operation may be estimated to make (0 = no limit).
    pub max_upstream_calls: u64,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        Self {
            max_tokens: 20_000,
            max_fields: 5_000,
            max_aliases: 300,
            max_root_fields: 100,
            max_directives_per_field: 8,
            max_list_length: 1_000,
            max_upstream_calls: 500,
        }
    }
}

/// Deepest nesting of `{`, `[` and `(` in a document's text. Bounds the parser's
/// recursion (its stack) whatever the other limits say; real queries nest under 20.
pub(crate) const MAX_NESTING: usize = 64;
/// Deepest chain of selections and fragment spreads (async-graphql's own default
/// recursion limit, which we enforce here in linear time instead).
pub(crate) const MAX_RECURSION: usize = 32;

/// Why a document was refused. Messages name the limit and never echo the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GuardError {
    #[error("the document has more than {0} tokens")]
    Tokens(usize),
    #[error("the document nests brackets more than {MAX_NESTING} deep")]
    Nesting,
    #[error("the operation selects more than {0} fields once fragments are spread")]
    Fields(usize),
    #[error("the operation has more than {0} aliased fields")]
    Aliases(usize),
    #[error("the operation has more than {0} top-level fields")]
    RootFields(usize),
    #[error("a selection has more than {0} directives")]
    Directives(usize),
    #[error("selections and fragment spreads nest more than {MAX_RECURSION} deep")]
    Recursion,
    #[error("fragment {0:?} spreads itself")]
    Cycle(String),
}

/// Counts tokens and nesting of `query` (the GraphQL lexical grammar: punctuators,
/// names, numbers, strings and block strings; white space, commas and comments are
/// ignored). A string left open counts as one token: the parser reports it.
pub(crate) fn scan(query: &str, max_tokens: usize) -> Result<(), GuardError> {
    let bytes = query.as_bytes();
    let mut i = 0;
    let mut tokens = 0usize;
    let mut depth = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            // A UTF-8 byte order mark is ignored, like white space.
            0xEF if bytes[i..].starts_with(&[0xEF, 0xBB, 0xBF]) => {
                i += 3;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                loop {
                    if i >= bytes.len() {
                        break;
                    }
                    if bytes[i..].starts_with(b"\\\"\"\"") {
                        i += 4;
                    } else if bytes[i..].starts_with(b"\"\"\"") {
                        i += 3;
                        break;
                    } else {
                        i += 1;
                    }
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(GuardError::Nesting);
                }
                i += 1;
            }
            b'}' | b']' | b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => i += 3,
            b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'+' | b'.' => {
                i += 1;
                while i < bytes.len()
                    && matches!(bytes[i], b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'+' | b'-')
                {
                    i += 1;
                }
            }
            // Punctuators and anything else (the parser rejects what is not GraphQL).
            _ => i += 1,
        }
        tokens += 1;
        if tokens > max_tokens {
            return Err(GuardError::Tokens(max_tokens));
        }
    }
    Ok(())
}

/// What a selection set amounts to once every fragment in it is spread.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    fields: usize,
    aliases: usize,
    /// Fields at the set's own level (for an operation: its root fields).
    top: usize,
    /// Longest chain of nested selections and spreads below it.
    depth: usize,
}

struct Walker<'a> {
    doc: &'a ExecutableDocument,
    limits: DocumentLimits,
    /// Fragment summaries; `None` while a fragment is being summarised (a cycle).
    fragments: HashMap<&'a str, Option<Summary>>,
}

/// Checks `doc` against `limits` (see the module doc). Unknown fragments are skipped:
/// validation reports them.
pub(crate) fn check(doc: &ExecutableDocument, limits: DocumentLimits) -> Result<(), GuardError> {
    let mut walker = Walker {
        doc,
        limits,
        fragments: HashMap::new(),
    };
    for (_, operation) in doc.operations.iter() {
        let summary = walker.set(&operation.node.selection_set.node, 0)?;
        if summary.top > limits.max_root_fields {
            return Err(GuardError::RootFields(limits.max_root_fields));
        }
    }
    // Fragments no operation spreads are a validation error; summarising them keeps
    // their directives and cycles bounded too.
    for (name, fragment) in &doc.fragments {
        if !walker.fragments.contains_key(name.as_str()) {
            walker.fragment(name.as_str(), &fragment.node.selection_set.node, 0)?;
        }
    }
    Ok(())
}

impl<'a> Walker<'a> {
    fn fragment(
        &mut self,
        name: &'a str,
        set: &'a SelectionSet,
        level: usize,
    ) -> Result<Summary, GuardError> {
        match self.fragments.get(name) {
            Some(Some(summary)) => return Ok(*summary),
            Some(None) => return Err(GuardError::Cycle(name.to_owned())),
            None => {}
        }
        self.fragments.insert(name, None);
        let summary = self.set(set, level)?;
        self.fragments.insert(name, Some(summary));
        Ok(summary)
    }

    fn set(&mut self, set: &'a SelectionSet, level: usize) -> Result<Summary, GuardError> {
        if level > MAX_RECURSION {
            return Err(GuardError::Recursion);
        }
        let mut out = Summary::default();
        for item in &set.items {
            if item.node.directives().len() > self.limits.max_directives_per_field {
                return Err(GuardError::Directives(self.limits.max_directives_per_field));
            }
            let (inner, is_field, aliased) = match &item.node {
                Selection::Field(field) => {
                    let inner = self.set(&field.node.selection_set.node, level + 1)?;
                    (inner, true, field.node.alias.is_some())
                }
                Selection::InlineFragment(fragment) => (
                    self.set(&fragment.node.selection_set.node, level + 1)?,
                    false,
                    false,
                ),
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    match self.doc.fragments.get(name) {
                        Some(fragment) => (
                            self.fragment(name, &fragment.node.selection_set.node, level + 1)?,
                            false,
                            false,
                        ),
                        None => continue,
                    }
                }
            };
            out.fields = out
                .fields
                .saturating_add(inner.fields)
                .saturating_add(usize::from(is_field));
            out.aliases = out
                .aliases
                .saturating_add(inner.aliases)
                .saturating_add(usize::from(aliased));
            out.top = out.top.saturating_add(if is_field { 1 } else { inner.top });
            out.depth = out.depth.max(inner.depth + 1);
            if out.fields > self.limits.max_fields {
                return Err(GuardError::Fields(self.limits.max_fields));
            }
            if out.aliases > self.limits.max_aliases {
                return Err(GuardError::Aliases(self.limits.max_aliases));
            }
            if out.depth > MAX_RECURSION {
                return Err(GuardError::Recursion);
            }
        }
        Ok(out)
    }
}

/// The names of the top-level fields of every operation of `doc`, fragments spread
/// (unknown fragments skipped; bounded by the guard's limits, which ran first).
pub(crate) fn root_field_names(doc: &ExecutableDocument) -> Vec<&str> {
    fn collect<'a>(
        doc: &'a ExecutableDocument,
        set: &'a SelectionSet,
        level: usize,
        out: &mut Vec<&'a str>,
    ) {
        if level > MAX_RECURSION {
            return;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => out.push(f.node.name.node.as_str()),
                Selection::InlineFragment(fr) => {
                    collect(doc, &fr.node.selection_set.node, level + 1, out);
                }
                Selection::FragmentSpread(sp) => {
                    if let Some(fr) = doc.fragments.get(&sp.node.fragment_name.node) {
                        collect(doc, &fr.node.selection_set.node, level + 1, out);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for (_, op) in doc.operations.iter() {
        collect(doc, &op.node.selection_set.node, 0, &mut out);
    }
    out
}

/// Whether any operation of `doc` asks for `__schema` or `__type` at its root.
/// With introspection off async-graphql answers those with `null` and no error;
/// `execute` refuses them instead, so a client knows why.
pub(crate) fn selects_introspection(doc: &ExecutableDocument) -> bool {
    root_field_names(doc)
        .into_iter()
        .any(|name| matches!(name, "__schema" | "__type"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    const LIMITS: DocumentLimits = DocumentLimits {
        max_tokens: 1_000,
        max_fields: 100,
        max_aliases: 10,
        max_root_fields: 5,
        max_directives_per_field: 2,
        max_list_length: 1_000,
        max_upstream_calls: 500,
    };

    fn checked(q: &str) -> Result<(), GuardError> {
        checked_with(q, LIMITS)
    }

    fn checked_with(q: &str, limits: DocumentLimits) -> Result<(), GuardError> {
        scan(q, limits.max_tokens)?;
        let doc = parse_query(q).unwrap_or_else(|e| panic!("{e}"));
        check(&doc, limits)
    }

    /// `levels` fragments, each spreading the previous one twice: 2^levels fields.
    fn fan_out(levels: usize) -> String {
        let mut q = String::from("query { ...F0 } fragment F0 on Query { __typename }");
        q = q.replace("...F0", &format!("...F{levels}"));
        for i in 1..=levels {
            q.push_str(&format!(
                " fragment F{i} on Query {{ ...F{} ...F{} }}",
                i - 1,
                i - 1
            ));
        }
        q
    }

    #[test]
    fn counts_tokens_like_the_lexer() {
        assert_eq!(scan("{ a }", 3), Ok(()));
        assert_eq!(scan("{ a b }", 3), Err(GuardError::Tokens(3)));
        // Commas, comments and white space are not tokens; strings are one each.
        let q = "{ a(x: \"1 2 3\", y: 4) } # b c d e f";
        assert_eq!(scan(q, 11), Ok(()));
        assert_eq!(scan(q, 10), Err(GuardError::Tokens(10)));
        assert_eq!(scan("{ a(x: \"\"\"p q \\\"\"\" r\"\"\") }", 8), Ok(()));
        assert_eq!(scan("query Q($v: [Int!]) { ...F }", 100), Ok(()));
    }

    #[test]
    fn refuses_deep_nesting_before_parsing() {
        let deep = "{".repeat(MAX_NESTING + 1);
        assert_eq!(scan(&deep, usize::MAX), Err(GuardError::Nesting));
        let list = format!("{{ a(x: {}) }}", "[".repeat(MAX_NESTING));
        assert_eq!(scan(&list, usize::MAX), Err(GuardError::Nesting));
    }

    #[test]
    fn fragment_bombs_are_refused_by_count_not_by_walking() {
        let limits = DocumentLimits {
            max_tokens: usize::MAX,
            max_root_fields: usize::MAX,
            ..LIMITS
        };
        // 2^6 = 64 fields: within the limit of 100.
        assert_eq!(checked_with(&fan_out(6), limits), Ok(()));
        assert_eq!(
            checked_with(&fan_out(7), limits),
            Err(GuardError::Fields(100))
        );
        // With the default root-field bound, the same bomb is refused for its roots.
        assert_eq!(checked(&fan_out(3)), Err(GuardError::RootFields(5)));
        // 2^30 would take minutes to walk; the memoised walk answers at once.
        let doc = parse_query(fan_out(30)).unwrap_or_else(|e| panic!("{e}"));
        let started = std::time::Instant::now();
        assert_eq!(check(&doc, limits), Err(GuardError::Fields(100)));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn aliases_roots_and_directives_are_counted_after_spreading() {
        let aliases = "{ ...A ...A } fragment A on Query { a1: __typename a2: __typename a3: __typename a4: __typename a5: __typename a6: __typename }";
        assert_eq!(checked(aliases), Err(GuardError::Aliases(10)));
        let roots = "{ ...R } fragment R on Query { a: __typename b: __typename c: __typename d: __typename e: __typename f: __typename }";
        assert_eq!(checked(roots), Err(GuardError::RootFields(5)));
        let nested_roots = "{ device { a b c d e f } }";
        assert_eq!(checked(nested_roots), Ok(()));
        let directives = "{ __typename @skip(if: false) @include(if: true) @skip(if: false) }";
        assert_eq!(checked(directives), Err(GuardError::Directives(2)));
    }

    #[test]
    fn finds_introspection_at_the_root_only() {
        let doc = |q: &str| parse_query(q).unwrap_or_else(|e| panic!("{e}"));
        assert!(selects_introspection(&doc(
            "{ __schema { types { name } } }"
        )));
        assert!(selects_introspection(&doc(
            "{ ...F } fragment F on Query { __type(name: \"Device\") { name } }"
        )));
        assert!(!selects_introspection(&doc(
            "{ __typename device { __typename } }"
        )));
    }

    #[test]
    fn cycles_and_deep_spreads_are_refused() {
        let cycle = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
        assert!(matches!(checked(cycle), Err(GuardError::Cycle(_))));
        let self_spread = "fragment A on Query { ...A } { __typename }";
        assert!(matches!(checked(self_spread), Err(GuardError::Cycle(_))));
        // A chain of MAX_RECURSION + 1 fragments, each spreading the next once.
        let mut chain = String::from("{ ...C0 }");
        for i in 0..=MAX_RECURSION {
            chain.push_str(&format!(" fragment C{i} on Query {{ ...C{} }}", i + 1));
        }
        chain.push_str(&format!(
            " fragment C{} on Query {{ __typename }}",
            MAX_RECURSION + 1
        ));
        let limits = DocumentLimits {
            max_tokens: usize::MAX,
            ..LIMITS
        };
        let doc = parse_query(chain).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check(&doc, limits), Err(GuardError::Recursion));
    }
}
