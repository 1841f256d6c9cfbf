//! `GET /healthz`.

use serde::{Deserialize, Serialize};

/// `GET /healthz`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}
