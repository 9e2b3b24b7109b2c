// devicegraph's GraphiQL bootstrap (ours, not vendored).
//
// Mounts the vendored GraphiQL bundle (loaded before this file as plain <script>
// tags, so React, ReactDOM and GraphiQL are globals) on #graphiql. Everything
// server-specific comes from the JSON data block #devicegraph-graphiql-config, so
// this file is static and the page needs no inline script (the CSP allows none):
//   endpoint  the GraphQL URL (same origin)
//   query     the pre-filled query (a real simulator device, or a generic example)
//   headers   optional pre-filled headers editor content (API-key mode)
//
// `?autorun=1` in the page URL runs the pre-filled query as soon as the editor is
// ready, replacing whatever the browser's storage held: a link that shows a result,
// and what the headless-browser end-to-end test drives.
(function () {
  "use strict";

  var READY_POLL_MS = 50;
  var READY_GIVE_UP_MS = 15000;

  var config = JSON.parse(
    document.getElementById("devicegraph-graphiql-config").textContent
  );
  var autorun = new URLSearchParams(window.location.search).get("autorun") === "1";

  var props = {
    fetcher: GraphiQL.createFetcher({ url: config.endpoint }),
    defaultQuery: config.query,
    // Keys typed into the headers editor stay in this tab, never in localStorage.
    shouldPersistHeaders: false,
  };
  if (config.headers) {
    props.defaultHeaders = config.headers;
    props.defaultEditorToolsVisibility = "headers";
  }
  if (autorun) {
    // `query` (unlike `defaultQuery`) wins over a query restored from storage.
    props.query = config.query;
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, props)
  );

  if (autorun) {
    runWhenReady();
  }

  // Clicks the run button once the query editor holds the query. The state is
  // mirrored on <body data-autorun=...> (waiting, clicked, gave-up) for tests.
  function runWhenReady() {
    var started = Date.now();
    document.body.setAttribute("data-autorun", "waiting");
    (function poll() {
      var editor = document.querySelector(".graphiql-query-editor .CodeMirror");
      var button = document.querySelector(".graphiql-execute-button");
      var text = editor && editor.CodeMirror ? editor.CodeMirror.getValue() : "";
      if (button && text.trim() !== "") {
        button.click();
        document.body.setAttribute("data-autorun", "clicked");
      } else if (Date.now() - started > READY_GIVE_UP_MS) {
        document.body.setAttribute("data-autorun", "gave-up");
      } else {
        window.setTimeout(poll, READY_POLL_MS);
      }
    })();
  }
})();
