//! GraphQL's null propagation ("Handling Field Errors" in the spec), which
//! async-graphql 7 does not do: it drops a failed field from its object instead.
//!
//! Clients (and the REST routes built on [`crate::execute`]) rely on the contract's
//! shapes: a field is either present or null, and a non-null field is never null or
//! missing. So, per request:
//! - a failed nullable field resolves to `null` (its error is kept);
//! - a failed non-null field is recorded, and its parent — which sees the record when
//!   it finishes — becomes `null` in turn if nullable, or is recorded itself and
//!   passes it up; a recorded top-level field nulls `data`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, ResolveInfo,
};
use async_graphql::{
    PathSegment, QueryPathNode, QueryPathSegment, Response, ServerError, ServerResult, Value,
};

/// Builds one [`NullsExtension`] per request.
pub(crate) struct Nulls;

impl ExtensionFactory for Nulls {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(NullsExtension::default())
    }
}

#[derive(Default)]
pub(crate) struct NullsExtension {
    /// Response paths of non-null positions that could not be given a value.
    failed: Mutex<HashSet<Vec<Seg>>>,
    any_failed: AtomicBool,
    /// Errors of nullable fields, which now resolve to `null` rather than `Err`, so
    /// async-graphql no longer collects them.
    errors: Mutex<Vec<ServerError>>,
}

/// One step of a response path (async-graphql's `PathSegment` is not `Hash`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seg {
    Field(String),
    Index(usize),
}

fn path_of(node: &QueryPathNode<'_>) -> Vec<Seg> {
    let mut path: Vec<Seg> = std::iter::successors(Some(node), |n| n.parent)
        .map(|n| match n.segment {
            QueryPathSegment::Name(name) => Seg::Field(name.to_owned()),
            QueryPathSegment::Index(i) => Seg::Index(i),
        })
        .collect();
    path.reverse();
    path
}

fn error_path(path: &[Seg]) -> Vec<PathSegment> {
    path.iter()
        .map(|s| match s {
            Seg::Field(name) => PathSegment::Field(name.clone()),
            Seg::Index(i) => PathSegment::Index(*i),
        })
        .collect()
}

impl NullsExtension {
    fn record(&self, path: Vec<Seg>) {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path);
        self.any_failed.store(true, Ordering::Release);
    }

    /// The direct children of `path` that failed (for a list: the element indexes;
    /// for an object: any non-empty result means a non-null field failed).
    fn failed_children(&self, path: &[Seg]) -> Vec<usize> {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|f| f.len() == path.len() + 1 && f.starts_with(path))
            .map(|f| match f.last() {
                Some(Seg::Index(i)) => *i,
                _ => usize::MAX,
            })
            .collect()
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for NullsExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        response.errors.extend(std::mem::take(
            &mut *self.errors.lock().unwrap_or_else(PoisonError::into_inner),
        ));
        let top_level_failed = self
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|f| f.len() == 1);
        if top_level_failed {
            response.data = Value::Null;
        }
        response
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let node = *info.path_node;
        if matches!(node.segment, QueryPathSegment::Index(_)) {
            return self.resolve_item(ctx, info, next).await;
        }
        let nullable = !info.return_type.ends_with('!');
        // For lists, whether an element may be null: "[Device]!" yes, "[CampaignDeviceEdge!]!" no.
        let element_nullable = info
            .return_type
            .trim_end_matches('!')
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .map(|element| !element.ends_with('!'));
        match next.run(ctx, info).await {
            Err(mut err) if nullable => {
                err.path = error_path(&path_of(&node));
                self.errors
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(err);
                Ok(Some(Value::Null))
            }
            Err(err) => {
                self.record(path_of(&node));
                Err(err)
            }
            Ok(value) => {
                if !self.any_failed.load(Ordering::Acquire) {
                    return Ok(value);
                }
                let path = path_of(&node);
                let failed_children = self.failed_children(&path);
                if failed_children.is_empty() {
                    return Ok(value);
                }
                if let (Some(true), Some(Value::List(mut items))) =
                    (element_nullable, value.clone())
                {
                    // Only the failed elements become null.
                    for index in failed_children {
                        if let Some(item) = items.get_mut(index) {
                            *item = Value::Null;
                        }
                    }
                    return Ok(Some(Value::List(items)));
                }
                if !nullable {
                    self.record(path);
                }
                Ok(Some(Value::Null))
            }
        }
    }
}

impl NullsExtension {
    /// A list element. Its own type is not reliable here (async-graphql reports list
    /// elements resolved by reference as non-null), so a failed element is only
    /// recorded; the list field, which knows its element type, decides.
    async fn resolve_item(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let node = *info.path_node;
        let value = next.run(ctx, info).await?;
        if self.any_failed.load(Ordering::Acquire) {
            let path = path_of(&node);
            if !self.failed_children(&path).is_empty() {
                self.record(path);
            }
        }
        Ok(value)
    }
}
