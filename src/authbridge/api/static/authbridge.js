/*
 * authbridge.js: open an authbridge connect page from the host's page.
 *
 *   AuthBridge.connect(url, {width: 480, height: 640})
 *     .then(function (result) { ... result.authId, result.connector ... })
 *     .catch(function (error) { ... the popup was blocked, or closed without a result ... });
 *
 *   AuthBridge.configure(wizardUrl)   // the configuration wizard: {solutionInstanceId}
 *
 * An edit link (/external/auth/edit/...) opens with connect(): it ends like a connect link.
 *
 * `url` is the one-time link from POST /v1/connect/sessions, opened with the host page's
 * origin as the session's `origin`. Call connect() from a click handler, or browsers block the
 * popup. The promise accepts a message only from the popup itself and from the origin of
 * `url`. No dependencies; works in every current browser.
 */
(function (global) {
  "use strict";

  var WINDOW_NAME = "authbridge-connect";
  var POLL_MS = 250;
  var GRACE_MS = 200;

  function centered(width, height) {
    var left = (global.screenX || 0) + Math.max(0, ((global.outerWidth || width) - width) / 2);
    var top = (global.screenY || 0) + Math.max(0, ((global.outerHeight || height) - height) / 2);
    return "popup=yes,width=" + width + ",height=" + height +
      ",left=" + Math.round(left) + ",top=" + Math.round(top);
  }

  function isConnected(data) {
    return typeof data.authId === "string";
  }

  function isConfigured(data) {
    return typeof data.solutionInstanceId === "string";
  }

  function connect(url, options) {
    return openPopup(url, options, isConnected, function (data) {
      return { authId: data.authId, connector: data.connector };
    });
  }

  function configure(url, options) {
    return openPopup(url, options, isConfigured, function (data) {
      return { solutionInstanceId: data.solutionInstanceId };
    });
  }

  function openPopup(url, options, accepts, resultOf) {
    options = options || {};
    var width = Math.round(options.width || 480);
    var height = Math.round(options.height || 640);
    return new Promise(function (resolve, reject) {
      var expectedOrigin;
      try {
        expectedOrigin = new URL(url, global.location.href).origin;
      } catch (error) {
        reject(new Error("AuthBridge.connect: not a valid URL"));
        return;
      }
      var popup = global.open(url, WINDOW_NAME, centered(width, height));
      if (!popup) {
        reject(new Error("The connect window was blocked; allow popups for this site."));
        return;
      }
      var settled = false;
      var timer = null;

      function settle() {
        settled = true;
        global.removeEventListener("message", onMessage);
        if (timer !== null) {
          global.clearInterval(timer);
          timer = null;
        }
      }

      function onMessage(event) {
        if (settled || event.origin !== expectedOrigin || event.source !== popup) {
          return;
        }
        var data = event.data;
        if (!data || typeof data !== "object" || !accepts(data)) {
          return;
        }
        settle();
        resolve(resultOf(data));
      }

      global.addEventListener("message", onMessage);
      timer = global.setInterval(function () {
        if (settled || !popup.closed) {
          return;
        }
        global.clearInterval(timer);
        timer = null;
        // The result is posted just before the popup closes itself: let it arrive first.
        global.setTimeout(function () {
          if (!settled) {
            settle();
            reject(new Error("The connect window was closed before an account was connected."));
          }
        }, GRACE_MS);
      }, POLL_MS);
      try {
        popup.focus();
      } catch (error) {
        /* some browsers refuse focus(); the popup is open regardless */
      }
    });
  }

  global.AuthBridge = { connect: connect, configure: configure };
})(window);
