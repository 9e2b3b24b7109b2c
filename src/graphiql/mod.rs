//! GraphiQL, self-contained: the page a browser gets on `GET /graphql` (when
//! `graphql.graphiql` is on) and the JavaScript/CSS it needs, embedded in the binary
//! and served from `/graphql/assets/`, so it works without internet access.
//!
//! - `page`: the HTML, its sample query and its Content-Security-Policy.
//! - `assets`: the vendored files (`assets/graphiql/`) and their route.

pub(crate) mod assets;
pub(crate) mod page;

pub(crate) use page::Sample;
