#include "http/http.h"

#include <jansson.h>
#include <string.h>

int http_problem_status(enum err_code code)
{
    switch (code) {
    case ERR_OK:
        return 200;
    case ERR_INVALID:
        return 400;
    case ERR_UNAUTH:
        return 401;
    case ERR_DENIED:
        return 403;
    case ERR_NOTFOUND:
        return 404;
    case ERR_METHOD:
        return 405;
    case ERR_CONFLICT:
        return 409;
    case ERR_GONE:
        return 410;
    case ERR_PRECONDITION:
        return 412;
    case ERR_LIMIT:
        return 413;
    case ERR_RANGE:
        return 416;
    case ERR_HEADERS:
        return 431;
    case ERR_MEDIA_TYPE:
        return 415;
    case ERR_UNPROCESSABLE:
        return 422;
    case ERR_UNSUPPORTED:
        return 501;
    case ERR_BACKEND:
        return 503;
    case ERR_NETWORK:
        return 502;
    case ERR_TIMEOUT:
        return 408;
    case ERR_VERSION:
        return 505;
    case ERR_BUSY:
        return 503;
    case ERR_IO:
    case ERR_INTERNAL:
        return 500;
    }
    return 500;
}

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 422:
        return "Unprocessable Content";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

void http_send_problem_extra(struct http_req *req, const struct err *err, json_t *extra)
{
    int status = http_problem_status(err->code);
    json_t *o = json_object();
    json_t *detail = json_string(err->msg[0] ? err->msg : http_status_text(status));
    char type[96];
    char *text;

    snprintf(type, sizeof(type), "https://acervo.dev/problems/%s", err_code_name(err->code));
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "title", json_string(http_status_text(status)));
    json_object_set_new(o, "status", json_integer(status));
    /* a message cut inside a UTF-8 sequence is not a JSON string: fall back to the title */
    json_object_set_new(o, "detail", detail ? detail : json_string(http_status_text(status)));
    json_object_set_new(o, "instance", json_string(req->path));
    json_object_set_new(o, "request_id", json_string(req->id));
    if (extra)
        json_object_update_missing(o, extra);
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (status >= 500 && err->code != ERR_BUSY) /* refusals are logged by the server */
        log_write(LOG_ERROR, req->app->name, "%s %s: %s", req->method, req->path, err->msg);
    if (status == 401)
        http_resp_header(req, "WWW-Authenticate", "Bearer realm=\"acervo\"");
    http_send(req, status, "application/problem+json", text, strlen(text));
    free(text);
}

void http_send_problem(struct http_req *req, const struct err *err)
{
    http_send_problem_extra(req, err, NULL);
}
