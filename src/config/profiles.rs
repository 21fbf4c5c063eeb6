//! AWS named profiles: which exist, so that a `--profile` / `AWS_PROFILE` naming none of them is
//! bad input (as the aws CLI says "The config profile (x) could not be found") instead of being
//! silently ignored.

use std::collections::BTreeSet;

use super::{err, InputError};

/// Profile names in the shared config file (`[default]`, `[profile NAME]`) and the shared
/// credentials file (`[NAME]`). `[sso-session …]` and `[services …]` sections are not profiles.
pub fn profile_names(config: &str, credentials: &str) -> BTreeSet<String> {
    let headers = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|line| {
                let line = line.trim();
                let inner = line.strip_prefix('[')?.split(']').next()?;
                Some(inner.trim().to_string())
            })
            .collect()
    };
    let from_config = headers(config).into_iter().filter_map(|h| {
        if h == "default" {
            return Some(h);
        }
        let (kind, name) = h.split_once(char::is_whitespace)?;
        (kind == "profile").then(|| name.trim().to_string())
    });
    from_config.chain(headers(credentials)).collect()
}

/// The selected profile must be one of those found; `source` says where it was selected.
pub fn validate_profile(
    source: &str,
    profile: &str,
    found: &BTreeSet<String>,
    files: &str,
) -> Result<(), InputError> {
    if found.contains(profile) {
        return Ok(());
    }
    let listing = if found.is_empty() {
        "none".to_string()
    } else {
        found.iter().cloned().collect::<Vec<_>>().join(", ")
    };
    Err(err(format!(
        "{source} '{profile}' is not a profile in {files} (profiles found: {listing}); add it with `aws configure --profile {profile}` or choose one of those"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_profiles_in_both_files() {
        let config = "[default]\nregion = us-east-1\n[profile alpha]\nregion=eu-west-1\n\
                      [sso-session corp]\nsso_region = us-east-1\n[profile  beta ]\n";
        let credentials = "[gamma]\naws_access_key_id = x\n# [commented]\n";
        let names = profile_names(config, credentials);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(names, ["alpha", "beta", "default", "gamma"]);
    }

    #[test]
    fn an_unknown_profile_names_those_found() {
        let found = profile_names("[profile alpha]\n", "[beta]\n");
        assert!(validate_profile("--profile", "alpha", &found, "f").is_ok());
        let e = validate_profile("AWS_PROFILE", "prod", &found, "~/.aws/config").unwrap_err();
        assert!(
            e.0.starts_with("AWS_PROFILE 'prod' is not a profile in ~/.aws/config"),
            "{e}"
        );
        assert!(e.0.contains("profiles found: alpha, beta"), "{e}");
        let e = validate_profile("--profile", "x", &BTreeSet::new(), "f").unwrap_err();
        assert!(e.0.contains("profiles found: none"), "{e}");
    }
}
