//! Looks at the parsed operation once to tell the resolvers whether batching can
//! matter, and whether anything selects `freshness` (only then does the operation
//! keep what `Device.freshness` needs: see `RequestState::tracks_freshness`).
//!
//! The details DataLoader gathers loads over a short timer window before calling the
//! store. That is what batches aliases of `device`, but for the most common operation,
//! one `device` and nothing else that loads details, it is pure latency on the warm
//! (cached) path. When the document holds exactly one field that can load device
//! details, that load goes straight to the store. The limits extension
//! (`limits.rs`) asks this once per request, on the parsed document it checks.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Fields that load device details: `Query.device`, `Query.devices`,
/// `Campaign.devices` (whose nodes' `device`), `CampaignDevice.device`, and the root
/// `node`/`nodes` (device ids; `node` below the root is a connection edge's). Matching
/// by name over-counts (another type's field of that name), which only costs the fast
/// path, never a batch.
fn loads_details(name: &str, root: bool) -> bool {
    matches!(name, "device" | "devices") || (root && matches!(name, "node" | "nodes"))
}

fn count(set: &SelectionSet, root: bool) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(loads_details(f.node.name.node.as_str(), root))
                    + count(&f.node.selection_set.node, false)
            }
            Selection::InlineFragment(fr) => count(&fr.node.selection_set.node, root),
            // A named fragment may be spread more than once; counted where defined.
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Number of detail-loading fields in the document; a field inside a named fragment
/// counts as two, since the fragment may be spread several times.
pub(crate) fn detail_fields(doc: &ExecutableDocument) -> usize {
    let in_operations: usize = doc
        .operations
        .iter()
        .map(|(_, op)| count(&op.node.selection_set.node, true))
        .sum();
    let in_fragments: usize = doc
        .fragments
        .values()
        // Its type is not looked at: counted as if spread at the root.
        .map(|fr| 2 * count(&fr.node.selection_set.node, true))
        .sum();
    in_operations + in_fragments
}

/// Whether any field of the document (operations and fragments) is named `name`.
pub(crate) fn selects(doc: &ExecutableDocument, name: &str) -> bool {
    fn any(set: &SelectionSet, name: &str) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(f) => {
                f.node.name.node.as_str() == name || any(&f.node.selection_set.node, name)
            }
            Selection::InlineFragment(fr) => any(&fr.node.selection_set.node, name),
            Selection::FragmentSpread(_) => false,
        })
    }
    doc.operations
        .iter()
        .any(|(_, op)| any(&op.node.selection_set.node, name))
        || doc
            .fragments
            .values()
            .any(|fr| any(&fr.node.selection_set.node, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn n(q: &str) -> usize {
        detail_fields(&parse_query(q).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn counts_detail_loading_fields() {
        assert_eq!(n(r#"{ device(account: "a", imei: "1") { firmware } }"#), 1);
        assert_eq!(
            n(
                r#"{ a: device(account: "a", imei: "1") { firmware } b: device(account: "a", imei: "2") { firmware } }"#
            ),
            2
        );
        assert_eq!(
            n(
                r#"{ campaign(account: "a", id: "c") { devices { edges { node { device { firmware } } } } } }"#
            ),
            2
        );
        assert_eq!(
            n(r#"{ ... on Query { device(account: "a", imei: "1") { firmware } } }"#),
            1
        );
        assert_eq!(
            n(r#"{ ...F } fragment F on Query { device(account: "a", imei: "1") { firmware } }"#),
            2
        );
        assert_eq!(
            n(r#"{ node(id: "x") { id } device(account: "a", imei: "1") { firmware } }"#),
            2
        );
        assert_eq!(n(r#"{ nodes(ids: ["x"]) { id } }"#), 1);
        assert_eq!(n(r#"{ __typename }"#), 0);
    }

    #[test]
    fn finds_a_field_anywhere() {
        let doc = |q: &str| parse_query(q).unwrap_or_else(|e| panic!("{e}"));
        let f = "freshness";
        assert!(!selects(
            &doc(r#"{ device(account: "a", imei: "1") { imei } }"#),
            f
        ));
        assert!(selects(
            &doc(r#"{ device(account: "a", imei: "1") { freshness { details { stale } } } }"#),
            f
        ));
        assert!(selects(
            &doc(
                r#"{ ...F } fragment F on Query { a: device(account: "a", imei: "1") { ... on Device { freshness { details { stale } } } } }"#
            ),
            f
        ));
    }
}
