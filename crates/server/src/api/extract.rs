//! Extractors whose rejections are problem details, and the helpers the
//! handlers share: paging (`limit`, `Link`), `If-Match` against a plan's
//! ETag.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::problem::{Problem, codes};

/// `axum::Json`, rejecting with a problem.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(v))
    }
}

/// `axum::extract::Query`, rejecting with a problem.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(v))
    }
}

/// `axum::extract::Path`, rejecting with a problem.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(v))
    }
}

/// The default page size.
pub const DEFAULT_LIMIT: usize = 50;

/// `cursor` and `limit` of a listing.
#[derive(Debug, serde::Deserialize)]
pub struct Paging {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

impl Paging {
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }
}

/// A JSON answer with a `Link: <…>; rel="next"` header when there is a
/// next page: the request's own URI with `cursor` replaced.
pub fn paged<T: Serialize>(uri: &Uri, next: Option<&str>, body: &T) -> Response {
    let mut resp = axum::Json(body).into_response();
    if let Some(cursor) = next {
        let kept = uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .filter(|(k, _)| k != "cursor")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            query.append_pair(k, v);
        }
        query.append_pair("cursor", cursor);
        let link = format!("<{}?{}>; rel=\"next\"", uri.path(), query.finish());
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

/// A plan version as an ETag (a strong one, quoted).
pub fn etag(version: &str) -> String {
    format!("\"{version}\"")
}

/// Checks `If-Match` against the current ETag: 428 without one, 412 when
/// none of those given is current (`*` is not taken: the point is the version read).
pub fn check_if_match(headers: &HeaderMap, current: &str) -> Result<(), Problem> {
    let Some(given) = headers.get(header::IF_MATCH) else {
        return Err(Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            codes::IF_MATCH_REQUIRED,
            "this write needs If-Match with the plan's ETag (GET /api/v1/plans/{id})",
        ));
    };
    let given = given.to_str().unwrap_or("");
    let current = etag(current);
    let matches = given.split(',').map(str::trim).any(|t| t == current);
    if matches {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            codes::PRECONDITION_FAILED,
            format!(
                "the plan changed since it was read (its ETag is now {current}); read it again"
            ),
        ))
    }
}

/// `resp` with an `ETag` header.
pub fn with_etag(mut resp: Response, version: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}
