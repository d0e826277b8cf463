//! The fake's HTTP surface. One handler per host does what Twilio does in order:
//! authenticate, check what test credentials may reach, route, validate, answer.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::state::{CredentialKind, Fault, Host, KeyKind, RecordedRequest, State, StoredMessage, new_sid};

#[derive(Clone)]
pub(crate) struct Ctx {
    state: Arc<Mutex<State>>,
    host: Host,
}

impl Ctx {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(crate) fn router(state: Arc<Mutex<State>>, host: Host) -> Router {
    Router::new().fallback(handle).with_state(Ctx { state, host })
}

/// Everything about one request the routes need.
struct Request {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
    is_form: bool,
    credential: CredentialKind,
    /// The SID the request authenticated as (the Test Account SID for test credentials;
    /// an API key's account).
    sid: String,
    /// The kind of API key it authenticated with, if it did.
    key: Option<KeyKind>,
}

impl Request {
    fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
        params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn form(&self, name: &str) -> Option<&str> {
        Self::param(&self.form, name).filter(|value| !value.is_empty())
    }

    fn query(&self, name: &str) -> Option<&str> {
        Self::param(&self.query, name)
    }
}

async fn handle(AxumState(ctx): AxumState<Ctx>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    let form: Vec<(String, String)> =
        if is_form { form_urlencoded::parse(&body).into_owned().collect() } else { Vec::new() };
    let query: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let basic = basic_credentials(&headers);

    let (credential, sid, key, fault) = {
        let mut state = ctx.state();
        let (credential, sid, key) = match &basic {
            None => (CredentialKind::Missing, None, None),
            Some((user, password)) => match state.authenticate(user, password) {
                Some(caller) => (caller.kind, Some(caller.account_sid), caller.key),
                None => (CredentialKind::Invalid, Some(user.clone()), None),
            },
        };
        let api_key_sid = basic.as_ref().map(|(user, _)| user.clone()).filter(|user| user.starts_with("SK"));
        state.log.push(RecordedRequest {
            host: ctx.host,
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or("").to_owned(),
            account_sid: sid.clone(),
            credential,
            api_key_sid,
            form: form.iter().filter(|(key, _)| !key.to_lowercase().contains("token")).cloned().collect(),
        });
        (credential, sid, key, state.take_fault(uri.path()))
    };

    match fault {
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Status(status)) => return server_error(status),
        Some(Fault::Error { status, code, message }) => {
            return error(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), code, &message);
        }
        Some(Fault::RateLimit) => {
            let mut limited = error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
            limited.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return limited;
        }
        Some(Fault::MalformedJson) => {
            return ([(header::CONTENT_TYPE, "application/json")], "{\"sid\": \"AC").into_response();
        }
        Some(Fault::DropConnection) => return dropped(),
        Some(Fault::StatusAfterApplying(_) | Fault::DropAfterApplying) | None => {}
    }

    let sid = match (credential, sid) {
        (CredentialKind::Live | CredentialKind::Test, Some(sid)) => sid,
        _ => return authenticate_error(),
    };
    let request = Request { method, path: uri.path().to_owned(), query, form, is_form, credential, sid, key };
    let answer = match ctx.host {
        Host::Api => api(&ctx, &request),
        Host::Accounts => accounts(&ctx, &request),
    };
    match fault {
        Some(Fault::StatusAfterApplying(status)) => server_error(status),
        Some(Fault::DropAfterApplying) => dropped(),
        _ => answer,
    }
}

fn server_error(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, 20500, "An internal server error has occurred")
}

/// Headers sent, then the connection closes mid-body.
fn dropped() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped by fault injection"))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(failing))
        .expect("a valid response")
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

// ---- Twilio's answers -------------------------------------------------------------

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

fn authenticate_error() -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Twilio API\""));
    response
}

fn test_credentials_refused() -> Response {
    error(StatusCode::FORBIDDEN, 20008, "Resource not accessible with Test Account Credentials")
}

fn not_found(path: &str) -> Response {
    error(StatusCode::NOT_FOUND, 20404, &format!("The requested resource {path} was not found"))
}

fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, 20004, "Method not allowed")
}

fn invalid_parameter(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, 20001, message)
}

fn ok(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn rfc2822(date: chrono::DateTime<chrono::Utc>) -> String {
    date.to_rfc2822()
}

// ---- REST API 2010-04-01 ----------------------------------------------------------

fn api(ctx: &Ctx, request: &Request) -> Response {
    let Some(rest) = request.path.strip_prefix("/2010-04-01/") else {
        return not_found(&request.path);
    };
    // Without `.json` Twilio answers in XML; Patchbay must always ask for JSON.
    let Some(rest) = rest.strip_suffix(".json") else {
        let xml = format!(
            "<?xml version='1.0' encoding='UTF-8'?>\n<TwilioResponse><RestException><Code>20404</Code><Message>The requested resource {} was not found</Message><Status>404</Status></RestException></TwilioResponse>",
            request.path
        );
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "application/xml")], xml).into_response();
    };
    let segments: Vec<&str> = rest.split('/').collect();

    // Test credentials reach only POST IncomingPhoneNumbers, Messages and Calls.
    let test_allowed = request.method == Method::POST
        && matches!(segments.as_slice(), ["Accounts", _, "IncomingPhoneNumbers" | "Messages" | "Calls"]);
    if request.credential == CredentialKind::Test && !test_allowed {
        return test_credentials_refused();
    }
    // A Standard key may not read the Accounts (or Keys) resources; any key, nothing of
    // another account. Twilio answers both as it answers a wrong secret.
    let accounts_resource = matches!(segments.as_slice(), ["Accounts"] | ["Accounts", _] | ["Accounts", _, "Keys", ..]);
    if request.key == Some(KeyKind::Standard) && accounts_resource {
        return authenticate_error();
    }
    if let ["Accounts", sid, ..] = segments.as_slice()
        && *sid != request.sid
    {
        return if request.key.is_some() { authenticate_error() } else { not_found(&request.path) };
    }

    match (segments.as_slice(), &request.method) {
        (["Accounts"], &Method::GET) => list_accounts(ctx, request),
        (["Accounts", _], &Method::GET) => fetch_account(ctx, request),
        (["Accounts", _], &Method::POST) => update_account(ctx, request),
        (["Accounts", _, "IncomingPhoneNumbers"], &Method::GET) => list_incoming_numbers(ctx, request),
        (["Accounts", _, "Messages"], &Method::POST) => create_message(ctx, request),
        (["Accounts", _, "Messages"], &Method::GET) => list_messages(ctx, request),
        (["Accounts", _, "Messages", message], &Method::GET) => fetch_message(ctx, request, message),
        (["Accounts"] | ["Accounts", _] | ["Accounts", _, "IncomingPhoneNumbers" | "Messages"], _) => {
            method_not_allowed()
        }
        _ => not_found(&request.path),
    }
}

fn account_json(ctx: &Ctx, sid: &str) -> Value {
    let state = ctx.state();
    let account = &state.accounts[sid];
    json!({
        "auth_token": account.primary_token,
        "date_created": rfc2822(account.created),
        "date_updated": rfc2822(account.created),
        "friendly_name": account.friendly_name,
        "owner_account_sid": account.sid,
        "sid": account.sid,
        "status": account.status,
        "subresource_uris": {
            "incoming_phone_numbers": format!("/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json"),
            "messages": format!("/2010-04-01/Accounts/{sid}/Messages.json"),
        },
        "type": account.account_type,
        "uri": format!("/2010-04-01/Accounts/{sid}.json"),
    })
}

fn fetch_account(ctx: &Ctx, request: &Request) -> Response {
    ok(StatusCode::OK, account_json(ctx, &request.sid))
}

fn update_account(ctx: &Ctx, request: &Request) -> Response {
    if let Some(status) = request.form("Status") {
        let status = match status {
            "active" => "active",
            "suspended" => "suspended",
            "closed" => "closed",
            _ => return invalid_parameter("Invalid Status: must be active, suspended or closed"),
        };
        ctx.state().accounts.get_mut(&request.sid).expect("authenticated").status = status;
    }
    if let Some(name) = request.form("FriendlyName") {
        ctx.state().accounts.get_mut(&request.sid).expect("authenticated").friendly_name = name.to_owned();
    }
    fetch_account(ctx, request)
}

fn list_accounts(ctx: &Ctx, request: &Request) -> Response {
    let account = account_json(ctx, &request.sid);
    paged(request, "/2010-04-01/Accounts.json", "accounts", vec![account], &[])
}

fn list_incoming_numbers(ctx: &Ctx, request: &Request) -> Response {
    let wanted = request.query("PhoneNumber");
    let friendly = request.query("FriendlyName");
    let numbers: Vec<Value> = {
        let state = ctx.state();
        let account = &state.accounts[&request.sid];
        account
            .phone_numbers
            .iter()
            .filter(|number| wanted.is_none_or(|wanted| matches_phone_filter(number, wanted)))
            .filter(|number| friendly.is_none_or(|friendly| friendly == number.as_str()))
            .map(|number| {
                json!({
                    "account_sid": account.sid,
                    "capabilities": {"voice": true, "sms": true, "mms": true, "fax": false},
                    "date_created": rfc2822(account.created),
                    "date_updated": rfc2822(account.created),
                    "friendly_name": number,
                    "phone_number": number,
                    "sid": format!("PN{:0>32}", number.trim_start_matches('+')),
                    "status": "in-use",
                    "uri": format!("/2010-04-01/Accounts/{}/IncomingPhoneNumbers/PN{:0>32}.json", account.sid, number.trim_start_matches('+')),
                })
            })
            .collect()
    };
    let path = format!("/2010-04-01/Accounts/{}/IncomingPhoneNumbers.json", request.sid);
    paged(request, &path, "incoming_phone_numbers", numbers, &["PhoneNumber", "FriendlyName", "Beta", "Origin"])
}

/// Twilio's `PhoneNumber` filter: partial numbers match, `*` stands for any digit.
fn matches_phone_filter(number: &str, filter: &str) -> bool {
    let (number, filter) = (number.as_bytes(), filter.as_bytes());
    number.windows(filter.len().max(1)).any(|window| {
        filter.len() <= number.len()
            && window.iter().zip(filter).all(|(n, f)| n == f || (*f == b'*' && n.is_ascii_digit()))
    })
}

/// Twilio's paging envelope over `items`, with the filters repeated in every URI.
fn paged(request: &Request, path: &str, key: &str, items: Vec<Value>, filters: &[&str]) -> Response {
    let page_size = match request.query("PageSize").map(str::parse::<usize>) {
        None => 50,
        Some(Ok(size)) if (1..=1000).contains(&size) => size,
        Some(_) => return invalid_parameter("PageSize must be an integer between 1 and 1000"),
    };
    let page = match request.query("Page").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(page)) => page,
        Some(Err(_)) => return invalid_parameter("Page must be a non-negative integer"),
    };
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (name, value) in &request.query {
        if filters.contains(&name.as_str()) || name.starts_with("DateSent") {
            kept.append_pair(name, value);
        }
    }
    let kept = kept.finish();
    let uri = |page: usize| {
        let filters = if kept.is_empty() { String::new() } else { format!("{kept}&") };
        format!("{path}?{filters}PageSize={page_size}&Page={page}")
    };
    let start = page * page_size;
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip(start).take(page_size).collect();
    let end = if slice.is_empty() { start } else { start + slice.len() - 1 };
    let next = (start + page_size < total).then(|| format!("{}&PageToken=PA{}", uri(page + 1), start + page_size));
    let previous = (page > 0).then(|| uri(page - 1));
    ok(
        StatusCode::OK,
        json!({
            key: slice,
            "first_page_uri": uri(0),
            "next_page_uri": next,
            "previous_page_uri": previous,
            "page": page,
            "page_size": page_size,
            "start": start,
            "end": end,
            "uri": uri(page),
        }),
    )
}

/// E.164 as Twilio checks a `To`: `+`, a non-zero digit, up to 15 digits.
/// Whether Twilio would take `number` as a `To`: E.164 and a number that can exist in
/// its country (Twilio validates with libphonenumber's data, as `phonenumber` does), so
/// the fictional 555 exchange of North America is refused with 21211 as Twilio does.
fn is_valid_to(number: &str) -> bool {
    number.starts_with('+') && phonenumber::parse(None, number).is_ok_and(|parsed| phonenumber::is_valid(&parsed))
}

fn create_message(ctx: &Ctx, request: &Request) -> Response {
    // A JSON body is not read at all, so `To` is "missing" (code 21604).
    let Some(to) = request.form("To").filter(|_| request.is_form) else {
        return error(StatusCode::BAD_REQUEST, 21604, "A 'To' phone number is required.");
    };
    let Some(from) = request.form("From").or(request.form("MessagingServiceSid")) else {
        return error(StatusCode::BAD_REQUEST, 21603, "A 'From' phone number is required.");
    };
    let Some(body) = request.form("Body").or(request.form("MediaUrl")).or(request.form("ContentSid")) else {
        return error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    };
    if request.credential == CredentialKind::Test {
        // Twilio's magic numbers for test credentials.
        let from_error = match from {
            "+15005550006" => None,
            "+15005550001" => Some((
                21212,
                "The 'From' number +15005550001 is not a valid phone number, shortcode, or alphanumeric sender ID.",
            )),
            "+15005550008" => Some((21611, "This 'From' number has exceeded the maximum number of queued messages")),
            _ => Some((
                21606,
                "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination.",
            )),
        };
        if let Some((code, message)) = from_error {
            return error(StatusCode::BAD_REQUEST, code, message);
        }
        let to_error = match to {
            "+15005550001" => Some((21211, format!("The 'To' number {to} is not a valid phone number."))),
            "+15005550002" => Some((
                21612,
                format!(
                    "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {from} via SMS."
                ),
            )),
            "+15005550003" => Some((
                21408,
                format!(
                    "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."
                ),
            )),
            "+15005550004" => Some((21610, "Attempt to send to unsubscribed recipient".to_owned())),
            "+15005550009" => Some((21614, format!("'To' number {to} is not a valid mobile number"))),
            _ if !is_valid_to(to) || to == from => {
                Some((21211, format!("The 'To' number {to} is not a valid phone number.")))
            }
            _ => None,
        };
        if let Some((code, message)) = to_error {
            return error(StatusCode::BAD_REQUEST, code, &message);
        }
        return ok(StatusCode::CREATED, message_json(&request.sid, from, to, body, "outbound-api"));
    }

    let owned = ctx.state().accounts[&request.sid].phone_numbers.iter().any(|number| number == from);
    if !owned {
        return error(
            StatusCode::BAD_REQUEST,
            21606,
            "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination.",
        );
    }
    if !is_valid_to(to) || to == from {
        return error(StatusCode::BAD_REQUEST, 21211, &format!("The 'To' number {to} is not a valid phone number."));
    }
    let message = message_json(&request.sid, from, to, body, "outbound-api");
    ctx.state().messages.entry(request.sid.clone()).or_default().push(StoredMessage { json: message.clone() });
    ok(StatusCode::CREATED, message)
}

pub(crate) fn message_json(account_sid: &str, from: &str, to: &str, body: &str, direction: &str) -> Value {
    let sid = new_sid("SM");
    let now = rfc2822(chrono::Utc::now());
    json!({
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": direction,
        "error_code": null,
        "error_message": null,
        "from": from,
        "messaging_service_sid": null,
        "num_media": "0",
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": format!("/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json")},
        "to": to,
        "uri": format!("/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json"),
    })
}

fn list_messages(ctx: &Ctx, request: &Request) -> Response {
    let to = request.query("To");
    let from = request.query("From");
    // `DateSent`, `DateSent<` and `DateSent>` (inclusive), by day: YYYY-MM-DD.
    let mut day_filters = Vec::new();
    for (name, op) in [("DateSent", "="), ("DateSent<", "<"), ("DateSent>", ">")] {
        if let Some(value) = request.query(name) {
            match chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
                Ok(day) => day_filters.push((op, day)),
                Err(_) => return invalid_parameter(&format!("Invalid {name}: use YYYY-MM-DD")),
            }
        }
    }
    let sent_day = |message: &Value| {
        message["date_sent"].as_str().and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok()).map(|d| d.date_naive())
    };
    let messages: Vec<Value> = ctx
        .state()
        .messages
        .get(&request.sid)
        .map(|messages| {
            messages
                .iter()
                .rev() // newest first, as Twilio lists them
                .filter(|m| to.is_none_or(|to| m.json["to"] == to))
                .filter(|m| from.is_none_or(|from| m.json["from"] == from))
                .filter(|m| {
                    day_filters.iter().all(|(op, day)| match (sent_day(&m.json), *op) {
                        (Some(sent), "=") => sent == *day,
                        (Some(sent), "<") => sent <= *day,
                        (Some(sent), _) => sent >= *day,
                        (None, _) => false,
                    })
                })
                .map(|m| m.json.clone())
                .collect()
        })
        .unwrap_or_default();
    let path = format!("/2010-04-01/Accounts/{}/Messages.json", request.sid);
    paged(request, &path, "messages", messages, &["To", "From"])
}

fn fetch_message(ctx: &Ctx, request: &Request, message_sid: &str) -> Response {
    let found = ctx
        .state()
        .messages
        .get(&request.sid)
        .and_then(|messages| messages.iter().find(|m| m.json["sid"] == message_sid).map(|m| m.json.clone()));
    match found {
        Some(message) => ok(StatusCode::OK, message),
        None => not_found(&request.path),
    }
}

// ---- Accounts v1 -----------------------------------------------------------------

fn accounts(ctx: &Ctx, request: &Request) -> Response {
    let known = matches!(request.path.as_str(), "/v1/AuthTokens/Secondary" | "/v1/AuthTokens/Promote");
    if !known {
        return not_found(&request.path);
    }
    if request.credential == CredentialKind::Test {
        return test_credentials_refused();
    }
    if request.key == Some(KeyKind::Standard) {
        return authenticate_error();
    }
    let url = format!("https://accounts.twilio.com{}", request.path);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut state = ctx.state();
    let state_delay = state.propagation_delay;
    let account = state.accounts.get_mut(&request.sid).expect("authenticated as a live account");
    match (request.path.as_str(), &request.method) {
        ("/v1/AuthTokens/Secondary", &Method::POST) => {
            let token = super::state::random_hex(32);
            account.secondary_token = Some(token.clone());
            ok(
                StatusCode::CREATED,
                json!({"account_sid": account.sid, "secondary_auth_token": token, "date_created": now, "date_updated": now, "url": url}),
            )
        }
        ("/v1/AuthTokens/Secondary", &Method::DELETE) => match account.secondary_token.take() {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => not_found(&request.path),
        },
        ("/v1/AuthTokens/Promote", &Method::POST) => match account.secondary_token.take() {
            Some(token) => {
                account.primary_token = token.clone();
                account.primary_accepted_from = Some(std::time::Instant::now() + state_delay);
                ok(
                    StatusCode::OK,
                    json!({"account_sid": account.sid, "auth_token": token, "date_created": now, "date_updated": now, "url": url}),
                )
            }
            None => error(StatusCode::BAD_REQUEST, 20001, "No secondary Auth Token to promote"),
        },
        _ => method_not_allowed(),
    }
}
