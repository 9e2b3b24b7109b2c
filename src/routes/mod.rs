//! Route handlers: `/graphql` (and its GraphiQL page and assets, and its persisted
//! queries and trusted documents in `trusted`), the `/v1` JSON API, `/openapi.json`,
//! the operational routes and the admin route. Middleware lives in `crate::http`.

pub(crate) mod admin;
pub(crate) mod documents;
pub(crate) mod graphiql;
pub(crate) mod graphql;
pub(crate) mod openapi;
pub(crate) mod ops;
pub(crate) mod rest;
pub(crate) mod trusted;
