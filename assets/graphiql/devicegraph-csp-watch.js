// devicegraph's GraphiQL page (ours, not vendored): records Content-Security-Policy
// refusals on <html data-csp-violations="directive blocked-uri; ..."> so a test (or
// a curious operator) sees them without a console. Loaded first and synchronously,
// before the stylesheets, because GraphiQL's fonts load at the first layout, long
// before the deferred scripts run.
(function () {
  "use strict";
  var violations = [];
  document.addEventListener("securitypolicyviolation", function (event) {
    violations.push(event.effectiveDirective + " " + (event.blockedURI || "inline"));
    document.documentElement.setAttribute("data-csp-violations", violations.join("; "));
  });
})();
