/*
 * The connect pages' success script (no inline scripts: the pages' CSP forbids them).
 *
 * Posts the result ({authId, connector}, JSON in data-result) to window.opener, addressed to
 * the host's exact origin (data-origin), then closes the window. Without an origin or an
 * opener it does nothing: the page already says "Connected. You can close this window."
 */
(function () {
  "use strict";
  var element = document.getElementById("connect-result");
  if (!element) {
    return;
  }
  var origin = element.getAttribute("data-origin");
  var result;
  try {
    result = JSON.parse(element.getAttribute("data-result") || "null");
  } catch (error) {
    return;
  }
  if (!origin || !result || !window.opener || window.opener.closed) {
    return;
  }
  window.opener.postMessage(result, origin);
  window.close();
})();
