//! Signed, expiring links to an approval on the dashboard. The link opens the Approvals page at
//! the request; acting on it still needs a login with the approver role. The signature is
//! HMAC-SHA256 under a key derived from the audit chain's key (the same in every process and
//! replica on the store, never sent anywhere), over `approval:<id>:<expires>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::AppError;

type HmacSha256 = Hmac<Sha256>;

/// Why a link was not followed.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The signature does not match (changed, or not made by this store).
    Invalid,
    /// Valid, but past its expiry.
    Expired,
}

fn key() -> Result<Vec<u8>, AppError> {
    let chain = crate::audit::process_key()?;
    Ok(chain.derive("approval links v1").into_bytes())
}

fn signature(key: &[u8], approval: &str, expires: i64) -> Result<String, AppError> {
    let mut mac = HmacSha256::new_from_slice(key)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("link key: {e}")))?;
    mac.update(format!("approval:{approval}:{expires}").as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// The path and query of a link to `approval`, valid for `ttl_hours` from now.
pub fn approval_path(approval: &str, ttl_hours: u32) -> Result<String, AppError> {
    approval_path_until(
        approval,
        chrono::Utc::now().timestamp() + i64::from(ttl_hours) * 3600,
    )
}

/// The path and query of a link to `approval` valid until `expires` (Unix seconds).
pub fn approval_path_until(approval: &str, expires: i64) -> Result<String, AppError> {
    let sig = signature(&key()?, approval, expires)?;
    Ok(format!(
        "/approvals/open/{approval}?expires={expires}&sig={sig}"
    ))
}

/// Checks a link's signature, then its expiry.
pub fn verify(approval: &str, expires: i64, sig: &str) -> Result<(), LinkError> {
    let key = key().map_err(|_| LinkError::Invalid)?;
    let given = hex::decode(sig).map_err(|_| LinkError::Invalid)?;
    let mut mac = HmacSha256::new_from_slice(&key).map_err(|_| LinkError::Invalid)?;
    mac.update(format!("approval:{approval}:{expires}").as_bytes());
    mac.verify_slice(&given).map_err(|_| LinkError::Invalid)?;
    if chrono::Utc::now().timestamp() > expires {
        return Err(LinkError::Expired);
    }
    Ok(())
}
