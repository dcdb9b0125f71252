"""A small client for an MLflow tracking server's REST API (standard library only).

Only the calls the mirror needs: experiments get-by-name / create, runs create /
update / log-batch / search. Authentication comes from the environment the way
MLflow's own client reads it: MLFLOW_TRACKING_TOKEN (a bearer token) or
MLFLOW_TRACKING_USERNAME + MLFLOW_TRACKING_PASSWORD (HTTP basic).

Every request has a timeout (MEMORYLAB_TRACKING_TIMEOUT seconds, default 5); a 429
or 503 answer is retried with exponential backoff (honouring Retry-After, capped);
anything else that fails raises `TrackingError` with one line saying what.
"""

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request

API = "/api/2.0/mlflow/"
DEFAULT_TIMEOUT_S = 5.0
RETRY_STATUSES = (429, 503)
RETRIES = 4
BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
# MLflow's log-batch limits: per request at most 1000 metrics, 100 params, 100 tags
# and 1000 items in all. Keys are at most 250 characters; values are cut to stay
# within the limits of older servers (params 500, tags 5000 characters).
BATCH_METRICS, BATCH_PARAMS, BATCH_TAGS, BATCH_TOTAL = 1000, 100, 100, 1000
MAX_KEY_CHARS, MAX_PARAM_CHARS, MAX_TAG_CHARS = 250, 500, 5000
SEARCH_PAGE = 1000  # the largest page search-runs serves


class TrackingError(Exception):
    """The server could not be reached, or refused a request (one-line message)."""

    def __init__(self, message, status=None, code=None):
        super().__init__(message)
        self.status, self.code = status, code


class Client:
    """The REST API of one tracking server. `env` supplies credentials and the
    timeout; `sleep` is injectable so tests of the backoff never wait."""

    def __init__(self, uri, env, sleep=time.sleep):
        parsed = urllib.parse.urlsplit(uri or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"tracking URI must be http:// or https://, got {uri!r}")
        self.uri = uri.rstrip("/")
        self.sleep = sleep
        self.timeout = _timeout(env.get("MEMORYLAB_TRACKING_TIMEOUT"))
        self.headers = {"Content-Type": "application/json"}
        token = env.get("MLFLOW_TRACKING_TOKEN")
        user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif user and password is not None:
            pair = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {pair}"

    # ---------------------------------------------------------------- transport
    def call(self, method, path, body=None):
        """The decoded JSON answer of one API call, retried on 429/503."""
        url = self.uri + API + path
        data = None
        if method == "GET" and body:
            url += "?" + urllib.parse.urlencode(body)
        elif body is not None:
            data = json.dumps(body).encode()
        for attempt in range(RETRIES + 1):
            request = urllib.request.Request(url, data=data, method=method, headers=self.headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    text = answer.read()
                return json.loads(text) if text.strip() else {}
            except urllib.error.HTTPError as exc:
                if exc.code in RETRY_STATUSES and attempt < RETRIES:
                    self.sleep(_backoff(attempt, exc.headers.get("Retry-After")))
                    continue
                raise _http_error(exc, path) from None
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise TrackingError(f"{self.uri} unreachable ({_short(reason)})") from None
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------- experiments
    def experiment_id(self, name):
        """The id of the active experiment `name`, created when missing."""
        try:
            found = self.call("GET", "experiments/get-by-name", {"experiment_name": name})
            return found["experiment"]["experiment_id"]
        except TrackingError as exc:
            if exc.code != "RESOURCE_DOES_NOT_EXIST":
                raise
        try:
            return self.call("POST", "experiments/create", {"name": name})["experiment_id"]
        except TrackingError as exc:  # created by another store in the meantime
            if exc.code != "RESOURCE_ALREADY_EXISTS":
                raise
            found = self.call("GET", "experiments/get-by-name", {"experiment_name": name})
            return found["experiment"]["experiment_id"]

    # ---------------------------------------------------------------- runs
    def create_run(self, experiment_id, *, name, start_ms, tags):
        body = {"experiment_id": experiment_id, "run_name": name, "start_time": start_ms,
                "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        return self.call("POST", "runs/create", body)["run"]["info"]["run_id"]

    def update_run(self, run_id, status, end_ms=None):
        body = {"run_id": run_id, "status": status}
        if end_ms is not None:
            body["end_time"] = end_ms
        self.call("POST", "runs/update", body)

    def log_batch(self, run_id, *, metrics=(), params=(), tags=()):
        """Log everything in as many log-batch requests as MLflow's limits need."""
        metrics, params, tags = list(metrics), list(params), list(tags)
        while metrics or params or tags:
            take_params = params[:BATCH_PARAMS]
            take_tags = tags[:BATCH_TAGS]
            room = BATCH_TOTAL - len(take_params) - len(take_tags)
            take_metrics = metrics[:min(BATCH_METRICS, room)]
            del params[:len(take_params)], tags[:len(take_tags)], metrics[:len(take_metrics)]
            self.call("POST", "runs/log-batch", {
                "run_id": run_id, "metrics": take_metrics,
                "params": [{"key": k, "value": v} for k, v in take_params],
                "tags": [{"key": k, "value": v} for k, v in take_tags]})

    def search_runs(self, experiment_id, filter_string, order_by=("attributes.start_time ASC",)):
        """Every run of the experiment matching `filter_string`, page after page."""
        runs, token = [], None
        while True:
            body = {"experiment_ids": [experiment_id], "filter": filter_string,
                    "max_results": SEARCH_PAGE, "order_by": list(order_by)}
            if token:
                body["page_token"] = token
            page = self.call("POST", "runs/search", body)
            runs.extend(page.get("runs") or [])
            token = page.get("next_page_token")
            if not token:
                return runs


def run_tags(run):
    """{key: value} of an MLflow run as search-runs returns it."""
    return {t["key"]: t.get("value") for t in (run.get("data") or {}).get("tags") or []}


def run_params(run):
    return {p["key"]: p.get("value") for p in (run.get("data") or {}).get("params") or []}


def run_metrics(run):
    return {m["key"]: m.get("value") for m in (run.get("data") or {}).get("metrics") or []}


def quoted(value):
    """A string literal for a search filter."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _timeout(text):
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if 0 < value <= 600 else DEFAULT_TIMEOUT_S


def _backoff(attempt, retry_after):
    try:
        wanted = float(retry_after) if retry_after else 0.0
    except ValueError:
        wanted = 0.0
    return min(MAX_BACKOFF_S, max(wanted, BACKOFF_S * 2 ** attempt))


def _http_error(exc, path):
    code, message = None, ""
    try:
        answer = json.loads(exc.read() or b"{}")
        code, message = answer.get("error_code"), answer.get("message") or ""
    except (ValueError, OSError, AttributeError):
        pass
    if exc.code in (401, 403):
        message = message or "check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD"
    return TrackingError(f"{path}: HTTP {exc.code} {code or exc.reason}: {_short(message)}",
                         status=exc.code, code=code)


def _short(value, limit=160):
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
