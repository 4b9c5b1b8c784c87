// forge admin: passkey ceremonies for the sign-in pages (passwordless, and
// the second step) and the Settings page.
//
// The site's one script. Served by forge itself and run only where the
// page's Content-Security-Policy names the nonce of its <script> tag. It
// asks forge for WebAuthn options (a same-origin POST carrying the form's
// CSRF token), hands them to the browser's authenticator, and posts the
// answer back with an ordinary form submit, so forge answers with a page or
// a redirect exactly as for the password form. No library, nothing from
// elsewhere: the base64url <-> ArrayBuffer conversion is the only glue.
(function () {
  "use strict";

  function toBuffer(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) {
      base64 += "=";
    }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBuffers(list) {
    return (list || []).map(function (c) {
      var copy = Object.assign({}, c);
      copy.id = toBuffer(c.id);
      return copy;
    });
  }

  function creationOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = toBuffer(json.challenge);
    o.user = Object.assign({}, json.user, { id: toBuffer(json.user.id) });
    o.excludeCredentials = withBuffers(json.excludeCredentials);
    return o;
  }

  function requestOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = toBuffer(json.challenge);
    o.allowCredentials = withBuffers(json.allowCredentials);
    return o;
  }

  // The credential's JSON form (what PublicKeyCredential.toJSON() gives).
  function registrationJSON(credential) {
    var r = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toBase64url(r.clientDataJSON),
        attestationObject: toBase64url(r.attestationObject),
        transports: typeof r.getTransports === "function" ? r.getTransports() : [],
      },
      clientExtensionResults: {},
    };
  }

  function assertionJSON(credential) {
    var r = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toBase64url(r.clientDataJSON),
        authenticatorData: toBase64url(r.authenticatorData),
        signature: toBase64url(r.signature),
        userHandle: r.userHandle ? toBase64url(r.userHandle) : null,
      },
      clientExtensionResults: {},
    };
  }

  function field(form, name) {
    return form.elements.namedItem(name);
  }

  // POSTs `fields` (form-encoded, as forge's forms are) and answers the
  // options, or throws with forge's message.
  function fetchOptions(url, fields) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      body: new URLSearchParams(fields),
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (body) {
          if (!response.ok) {
            throw new Error(body.message || "The server refused to start the passkey ceremony.");
          }
          return body;
        });
    });
  }

  function showError(id, error) {
    var box = document.getElementById(id);
    if (!box) {
      return;
    }
    var text = "The passkey ceremony did not complete.";
    if (error && error.name !== "NotAllowedError" && error.message) {
      text = error.message;
    }
    box.textContent = text;
    box.hidden = false;
  }

  function setUpSignIn() {
    var form = document.getElementById("passkey-form");
    if (!form) {
      return;
    }
    form.hidden = false;
    var button = document.getElementById("passkey-sign-in");
    button.addEventListener("click", function () {
      button.disabled = true;
      // The form's own fields: its token and, on the second step, the
      // challenge and tenant.
      var fields = new URLSearchParams(new FormData(form));
      fields.delete("request_id");
      fields.delete("credential");
      fetchOptions(form.dataset.options, fields)
        .then(function (options) {
          field(form, "request_id").value = options.request_id;
          return navigator.credentials.get({ publicKey: requestOptions(options.publicKey) });
        })
        .then(function (credential) {
          field(form, "credential").value = JSON.stringify(assertionJSON(credential));
          // The sign-in page's tenant is typed in the password form.
          var tenant = document.getElementById("tenant");
          if (tenant) {
            field(form, "tenant").value = tenant.value;
          }
          form.submit();
        })
        .catch(function (error) {
          button.disabled = false;
          showError("passkey-error", error);
        });
    });
  }

  function setUpRegistration() {
    var start = document.getElementById("passkey-add");
    var finish = document.getElementById("passkey-finish");
    if (!start || !finish) {
      return;
    }
    start.hidden = false;
    start.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = document.getElementById("add-passkey");
      button.disabled = true;
      // The form's own fields: its token and, on Settings, the name and
      // the current password; on the sign-in's enrolment step, the
      // challenge and tenant.
      var nameField = field(start, "name");
      var name = nameField ? nameField.value : "";
      var password = field(start, "password");
      fetchOptions(start.dataset.options, new URLSearchParams(new FormData(start)))
        .then(function (options) {
          if (password) {
            password.value = "";
          }
          field(finish, "request_id").value = options.request_id;
          return navigator.credentials.create({ publicKey: creationOptions(options.publicKey) });
        })
        .then(function (credential) {
          if (field(finish, "name")) {
            field(finish, "name").value = name;
          }
          field(finish, "credential").value = JSON.stringify(registrationJSON(credential));
          finish.submit();
        })
        .catch(function (error) {
          button.disabled = false;
          showError("passkey-add-error", error);
        });
    });
  }

  if (window.PublicKeyCredential && navigator.credentials) {
    setUpSignIn();
    setUpRegistration();
  }
})();
