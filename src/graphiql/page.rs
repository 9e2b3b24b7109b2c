//! The GraphiQL HTML page: our own small document that loads only the embedded
//! assets (`super::assets`), points the fetcher at `/graphql`, and pre-fills the query
//! editor with a sample, a real device of the embedded simulator when there is one.
//!
//! The page is rendered once, when the state is built: nothing in it depends on the
//! request. Server-specific values travel in a JSON data block, which the bootstrap
//! script reads; so the page runs no inline script and its Content-Security-Policy
//! allows scripts, styles and connections from its own origin only (fonts and icons
//! also from `data:` URLs, which is how GraphiQL's stylesheet embeds its fonts).

use axum::response::{IntoResponse, Response};
use devicegraph_sim::Catalog;
use http::{HeaderValue, header};
use serde_json::json;

use super::assets;
use crate::http::negotiate::GRAPHQL_PATH;

/// The policy of the page: own origin only; `data:` for GraphiQL's embedded fonts
/// and images; no framing, no plugins, no base or form tricks.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The generic sample without a simulator: the ThingSpace documentation's example
/// account (every simulator has it too) and its example IMEI with the Luhn check
/// digit corrected (the documentation's `...573` fails the `IMEI` scalar).
const EXAMPLE_ACCOUNT: &str = devicegraph_sim::SEED_ACCOUNT;
const EXAMPLE_IMEI: &str = "990013907835578";

/// A device worth trying first: the banner prints it, GraphiQL pre-fills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) account: String,
    pub(crate) imei: String,
    /// A campaign of `account`, when the catalog has one.
    pub(crate) campaign: Option<String>,
}

impl Sample {
    /// The first campaign's account (so the campaign and device samples agree) and its
    /// first sample IMEI. `None` when the catalog lists no device for that account.
    pub(crate) fn from_catalog(catalog: &Catalog) -> Option<Self> {
        let campaign = catalog.campaigns.first();
        let account = campaign
            .map(|c| c.account.clone())
            .or_else(|| catalog.accounts.first().cloned())?;
        let imei = catalog.sample_imeis.get(&account)?.first()?.clone();
        Some(Self {
            account,
            imei,
            campaign: campaign.map(|c| c.id.clone()),
        })
    }
}

/// The whole HTML document. `sample` is the simulator's device (else a generic
/// example); `api_key` says whether the endpoint wants a key (`auth.mode = "api_key"`),
/// so the headers editor opens pre-filled with the header to complete.
pub(crate) fn render(sample: Option<&Sample>, api_key: bool) -> String {
    let mut config = json!({
        "endpoint": GRAPHQL_PATH,
        "query": sample_query(sample, api_key),
    });
    if api_key {
        config["headers"] = json!("{\n  \"X-API-Key\": \"\"\n}");
    }
    // A data block ends at the first `</script`: escape every `<` (JSON allows it).
    let config = config.to_string().replace('<', "\\u003c");
    let href = |name: &str| assets::href(name).unwrap_or_default();
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>devicegraph GraphiQL</title>
<script src="{csp_watch}"></script>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{graphiql_css}">
<link rel="stylesheet" href="{page_css}">
<script src="{react}" defer></script>
<script src="{react_dom}" defer></script>
<script src="{graphiql_js}" defer></script>
<script src="{bootstrap}" defer></script>
<script type="application/json" id="devicegraph-graphiql-config">{config}</script>
</head>
<body>
<div id="graphiql"><p class="devicegraph-loading">Loading GraphiQL&hellip;</p>
<noscript><p class="devicegraph-loading">GraphiQL needs JavaScript. Without it, POST queries to {GRAPHQL_PATH} with curl.</p></noscript></div>
</body>
</html>
"#,
        csp_watch = href(assets::CSP_WATCH_JS),
        graphiql_css = href(assets::GRAPHIQL_CSS),
        page_css = href(assets::PAGE_CSS),
        react = href(assets::REACT),
        react_dom = href(assets::REACT_DOM),
        graphiql_js = href(assets::GRAPHIQL_JS),
        bootstrap = href(assets::BOOTSTRAP_JS),
    )
}

/// The query editor's initial content. Comment lines stay under ~50 columns: that is
/// what the editor shows without scrolling in a 1400-pixel-wide window.
fn sample_query(sample: Option<&Sample>, api_key: bool) -> String {
    let (account, imei, origin) = match sample {
        Some(s) => (
            s.account.as_str(),
            s.imei.as_str(),
            "# A real device of the embedded simulator:\n\
             # press Run (Ctrl-Enter) to fetch it.\n",
        ),
        None => (
            EXAMPLE_ACCOUNT,
            EXAMPLE_IMEI,
            "# Put one of your devices' account and IMEI\n\
             # below, then press Run (Ctrl-Enter).\n",
        ),
    };
    let key = if api_key {
        "#\n# This gateway wants an API key: put yours\n# in the Headers tab below.\n"
    } else {
        ""
    };
    format!(
        "# devicegraph: one Device merged from ThingSpace's\n\
         # details, upgrade history and check-ins.\n\
         #\n\
         {origin}{key}\
         #\n\
         # Ctrl-Space completes; the Docs pane (book icon,\n\
         # top left) lists the whole schema.\n\
         \n\
         query SampleDevice {{\n  \
           device(\n    account: \"{account}\"\n    imei: \"{imei}\"\n  ) {{\n    \
             imei\n    account\n    make\n    model\n    firmware\n    status\n    \
             lastCheckIn {{\n      result\n      timeCompleted\n    }}\n    \
             upgradeHistory {{\n      campaignId\n      firmwareFrom\n      firmwareTo\n      \
               status\n    }}\n  \
           }}\n\
         }}\n"
    )
}

/// The page as an answer: HTML, its CSP, and `Vary: Accept` (the same URL answers
/// JSON to API clients).
pub(crate) fn respond(html: &str) -> Response {
    let mut response = html.to_owned().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sample {
        Sample {
            account: "0000123456-00001".into(),
            imei: "356938035643809".into(),
            campaign: None,
        }
    }

    /// The JSON data block of a rendered page.
    fn config_of(html: &str) -> serde_json::Value {
        let start = html
            .find(r#"id="devicegraph-graphiql-config">"#)
            .map(|i| i + r#"id="devicegraph-graphiql-config">"#.len())
            .unwrap_or_default();
        let end = html[start..].find("</script>").unwrap_or_default() + start;
        serde_json::from_str(&html[start..end]).unwrap_or_default()
    }

    #[test]
    fn the_page_loads_only_local_assets() {
        let html = render(Some(&sample()), false);
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );
        for name in [
            assets::REACT,
            assets::REACT_DOM,
            assets::GRAPHIQL_JS,
            assets::GRAPHIQL_CSS,
            assets::BOOTSTRAP_JS,
            assets::CSP_WATCH_JS,
        ] {
            assert!(
                html.contains(&format!("/graphql/assets/{name}?v=")),
                "{name}"
            );
        }
        // The only inline script is the (non-executable) JSON data block.
        assert_eq!(html.matches("<script").count(), 6);
        assert_eq!(html.matches("<script src=").count(), 5);
    }

    #[test]
    fn the_simulator_sample_is_pre_filled() {
        let config = config_of(&render(Some(&sample()), false));
        assert_eq!(config["endpoint"], "/graphql");
        let query = config["query"].as_str().unwrap_or_default();
        assert!(
            query.contains("account: \"0000123456-00001\"\n    imei: \"356938035643809\""),
            "{query}"
        );
        assert!(query.contains("simulator"), "{query}");
        assert!(config.get("headers").is_none());
    }

    #[test]
    fn without_a_simulator_a_generic_example_and_in_key_mode_a_header() {
        let config = config_of(&render(None, true));
        let query = config["query"].as_str().unwrap_or_default();
        assert!(
            query.contains(EXAMPLE_IMEI) && query.contains("your devices"),
            "{query}"
        );
        // The example must at least pass the IMEI scalar, so running it unchanged
        // reaches the upstream rather than failing validation.
        assert!(EXAMPLE_IMEI.parse::<devicegraph_upstream::Imei>().is_ok());
        assert!(query.contains("API key"), "{query}");
        assert!(
            config["headers"]
                .as_str()
                .unwrap_or_default()
                .contains("X-API-Key")
        );
    }

    #[test]
    fn a_hostile_sample_cannot_close_the_data_block() {
        let evil = Sample {
            account: "</script><script>alert(1)</script>".into(),
            ..sample()
        };
        let html = render(Some(&evil), false);
        assert!(!html.contains("<script>alert"), "{html}");
        let query = config_of(&html)["query"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            query.contains("</script><script>alert(1)</script>"),
            "{query}"
        );
    }
}
