// ReDoc's sidebar footer shows Redocly's logo from https://cdn.redoc.ly, the one thing it
// fetches from the internet: offline that is a failed request and a console error. Loaded
// before ReDoc, this hides that image instead of letting it be fetched.
(function () {
  "use strict";
  var LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg";
  var setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (this instanceof HTMLImageElement && name === "src" && String(value) === LOGO) {
      return setAttribute.call(this, "hidden", "");
    }
    return setAttribute.call(this, name, value);
  };
  var src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    configurable: true,
    enumerable: src.enumerable,
    get: src.get,
    set: function (value) {
      if (String(value) === LOGO) {
        setAttribute.call(this, "hidden", "");
      } else {
        src.set.call(this, value);
      }
    },
  });
})();
