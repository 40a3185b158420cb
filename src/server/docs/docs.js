// keyward /docs: starts swagger-ui on keyward's own OpenAPI document (GET /openapi.json).
// Served as a file of its own because the page's Content-Security-Policy allows no inline script.
// - validatorUrl null: no badge image from validator.swagger.io.
// - persistAuthorization false: an "Authorize"d key lives in this page's memory only (never
//   localStorage, sessionStorage, cookies or the URL); reloading the page forgets it.
// - queryConfigEnabled stays false (swagger-ui's default): ?url=… cannot point the page elsewhere.
// - Every "Try it out" request says it speaks the Connect protocol, version 1.
// - window.ui is the swagger-ui instance; once the document has loaded, window.keywardDocsReady
//   is true and "keyward:docs-ready" fires: the admin console (same origin, /console) frames
//   this page and then calls ui.preauthorizeApiKey("bearerAuth", <its credential>).
"use strict";
window.ui = window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
  queryConfigEnabled: false,
  withCredentials: false,
  tryItOutEnabled: false,
  displayRequestDuration: true,
  defaultModelsExpandDepth: 0,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  onComplete: function () {
    window.keywardDocsReady = true;
    window.dispatchEvent(new Event("keyward:docs-ready"));
  },
  requestInterceptor: function (request) {
    request.headers["Connect-Protocol-Version"] = "1";
    return request;
  },
});
