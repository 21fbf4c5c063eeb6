//! The flags every command shares: the AWS region and endpoint, and the state directory.

use std::path::PathBuf;

use super::{err, InputError};

/// A region name such as `us-east-1`, `us-gov-west-1` or `eusc-de-east-1`: lowercase words joined
/// by `-`, the first of two letters or more, ending in a number.
pub fn validate_region(region: &str) -> Result<String, InputError> {
    validate_region_from("--region", region)
}

/// Like [`validate_region`], naming where the value came from (a flag or an environment variable).
pub fn validate_region_from(source: &str, region: &str) -> Result<String, InputError> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() >= 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty();
    if !ok {
        return Err(err(format!(
            "{source} '{region}' is not an AWS region name (e.g. us-east-1, eu-west-2)"
        )));
    }
    Ok(region.to_string())
}

pub fn validate_endpoint_url(raw: &str) -> Result<String, InputError> {
    validate_endpoint_url_from("--endpoint-url", raw)
}

/// Like [`validate_endpoint_url`], naming where the value came from.
pub fn validate_endpoint_url_from(source: &str, raw: &str) -> Result<String, InputError> {
    match url::Url::parse(raw) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some() => {
            Ok(raw.to_string())
        }
        _ => Err(err(format!(
            "{source} '{raw}' is not an http(s) URL (e.g. http://localhost:5000)"
        ))),
    }
}

/// The ledger directory: the flag or env var, else XDG's state directory.
pub fn state_dir(explicit: Option<PathBuf>) -> Result<PathBuf, InputError> {
    if let Some(dir) = explicit {
        if dir.as_os_str().is_empty() {
            return Err(err("--state-dir / ECSCTL_STATE_DIR is empty"));
        }
        return Ok(dir);
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("ecsctl"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/ecsctl")),
        None => Err(err(
            "cannot find a state directory: set ECSCTL_STATE_DIR or HOME",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-west-2",
            "us-gov-west-1",
            "ap-southeast-3",
            "eusc-de-east-1",
        ] {
            assert!(validate_region(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "useast1",
            "us-east",
            "US-EAST-1",
            "us-east-1a",
            "us--1",
            "u-east-1",
        ] {
            assert!(validate_region(bad).is_err(), "{bad:?} accepted");
        }
        // A value from the environment is named by its variable, not by the flag.
        let e = validate_region_from("AWS_REGION", "moon-base").unwrap_err();
        assert!(e.0.starts_with("AWS_REGION 'moon-base'"), "{e}");
        let e = validate_endpoint_url_from("AWS_ENDPOINT_URL", "localhost:5000").unwrap_err();
        assert!(e.0.starts_with("AWS_ENDPOINT_URL 'localhost:5000'"), "{e}");
    }
}
