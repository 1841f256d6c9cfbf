//! The envelope every refusal comes in: `{"error": {"code", "message", ...}}`.

use serde::{Deserialize, Serialize};

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable machine-readable code, a human message, and what the error is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `not_in_market`. Clients tell errors apart by it.
    pub code: String,
    /// Human-readable detail; may change between versions.
    pub message: String,
    /// The request field the error is about, when it is about one (`tier`, `region`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// In a batch (`POST /v1/events`), the index of the item refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}
