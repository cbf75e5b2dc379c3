/* cityops: a callback answered 401 means the session ended (expired, signed out in
   another tab, user disabled): reload, and the server sends the page to the sign-in form.
   Network errors and 5xx are left alone: the page keeps its last picture and says
   "could not load" until the server is back. */
(function () {
    var original = window.fetch;
    if (!original) { return; }
    var reloading = false;
    window.fetch = function () {
        return original.apply(this, arguments).then(function (response) {
            if (response.status === 401 && !reloading &&
                    String(response.url).indexOf("_dash-") >= 0) {
                reloading = true;
                window.location.reload();
            }
            return response;
        });
    };
})();
