//! Route handlers: `/graphql` (its GraphiQL page and assets are `crate::graphiql`,
//! its persisted queries and trusted documents `crate::trusted`), the `/v1` JSON API,
//! `/openapi.json`, the operational routes and the admin route. Middleware lives in
//! `crate::http`; `crate::router` puts the two together.

pub(crate) mod admin;
pub(crate) mod documents;
pub(crate) mod graphql;
pub(crate) mod openapi;
pub(crate) mod ops;
pub(crate) mod rest;
