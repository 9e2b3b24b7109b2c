//! Content negotiation for GraphQL over HTTP: which media type a client accepts.
//!
//! Per the GraphQL-over-HTTP spec, a client that accepts
//! `application/graphql-response+json` gets it (and with it meaningful status codes);
//! otherwise the legacy `application/json` with 200. A missing `Accept` counts as
//! `application/json`. Shared by the `/graphql` route and the rescue point, so an
//! error raised by a middleware (401, 429, 504) has the same shape a GraphQL client
//! expects from the route itself.

use http::{HeaderMap, Uri, header};

pub(crate) const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
pub(crate) const APPLICATION_JSON: &str = "application/json";

/// The path of the GraphQL endpoint.
pub(crate) const GRAPHQL_PATH: &str = "/graphql";

/// The two response media types of a GraphQL answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GraphqlMedia {
    /// `application/graphql-response+json`: request errors are 4xx.
    GraphqlResponseJson,
    /// `application/json`: always 200 for anything GraphQL could answer.
    Json,
}

impl GraphqlMedia {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }

    /// The media type to answer with, or `None` when the client accepts neither.
    pub(crate) fn negotiate(headers: &HeaderMap) -> Option<Self> {
        let ranges = accepted(headers);
        if ranges.is_empty() {
            return Some(Self::Json);
        }
        if ranges.iter().any(|r| r == GRAPHQL_RESPONSE_JSON) {
            return Some(Self::GraphqlResponseJson);
        }
        if ranges
            .iter()
            .any(|r| matches!(r.as_str(), APPLICATION_JSON | "application/*" | "*/*"))
        {
            return Some(Self::Json);
        }
        None
    }

    /// Like [`GraphqlMedia::negotiate`], falling back to JSON: for error answers,
    /// where refusing with 406 would hide the real problem.
    pub(crate) fn for_errors(headers: &HeaderMap) -> Self {
        Self::negotiate(headers).unwrap_or(Self::Json)
    }
}

/// The media ranges of `Accept`, lower-cased, without parameters, minus `q=0` ones.
pub(crate) fn accepted(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            (!media.is_empty() && !refused).then_some(media)
        })
        .collect()
}

/// Whether a browser is asking for a page (GraphiQL) rather than an API answer.
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    accepted(headers).iter().any(|r| r == "text/html")
}

/// Whether errors for this request should be GraphQL-shaped.
pub(crate) fn is_graphql(uri: &Uri) -> bool {
    uri.path() == GRAPHQL_PATH
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn with_accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
        );
        h
    }

    #[test]
    fn negotiation_follows_the_spec() {
        assert_eq!(
            GraphqlMedia::negotiate(&HeaderMap::new()),
            Some(GraphqlMedia::Json)
        );
        assert_eq!(
            GraphqlMedia::negotiate(&with_accept(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Some(GraphqlMedia::GraphqlResponseJson)
        );
        assert_eq!(
            GraphqlMedia::negotiate(&with_accept("application/json")),
            Some(GraphqlMedia::Json)
        );
        assert_eq!(
            GraphqlMedia::negotiate(&with_accept("*/*")),
            Some(GraphqlMedia::Json)
        );
        assert_eq!(GraphqlMedia::negotiate(&with_accept("text/plain")), None);
        assert_eq!(
            GraphqlMedia::negotiate(&with_accept(
                "application/graphql-response+json;q=0, application/json"
            )),
            Some(GraphqlMedia::Json)
        );
        assert_eq!(
            GraphqlMedia::for_errors(&with_accept("image/png")),
            GraphqlMedia::Json
        );
    }

    #[test]
    fn browsers_want_html() {
        assert!(wants_html(&with_accept(
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )));
        assert!(!wants_html(&with_accept("application/json")));
    }
}
