from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from apps.gateway.errors import ApiError

PREFIX = "/v1/"
MESSAGES = {
    400: "The request could not be read.",
    403: "Forbidden.",
    404: "Unknown request URL.",
    405: "Method not allowed.",
    413: "The request body is too large.",
    500: "Lapis failed while handling the request. Try again; if it keeps failing, tell an admin.",
}


class ApiErrorsMiddleware:
    """Under /v1/ no answer is a Django HTML page: an error response that is not JSON (a 404 of
    the URL resolver, a 500 page, a 400 for a bad Host, a CSRF 403) becomes an OpenAI-shaped
    error with the same status. Put it first: Django turns an exception anywhere below into its
    error page before this sees the response."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        return self._convert(request, self.get_response(request))

    async def _acall(self, request):
        return self._convert(request, await self.get_response(request))

    def _convert(self, request, response):
        if not request.path.startswith(PREFIX) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        status = response.status_code
        message = MESSAGES.get(status, "The request failed.")
        if status == 404:
            message = f"Unknown request URL: {request.method} {request.path}."
        return ApiError(status, message, code=f"http_{status}").response()
