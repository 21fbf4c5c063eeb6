//! `--prefect-api-key-file` and `--prefect-api-auth-string-file`: a credential read from a regular
//! file or from stdin (`-`), with a bound on its size, so that a wrong path (`/dev/zero`, a FIFO
//! nobody writes to, a log file) fails at once instead of eating memory or hanging.

use std::io::Read;
use std::path::Path;

use crate::config::MAX_SECRET_LEN;
use crate::error::CliError;

/// A Prefect credential read from a file: what it is, its flag and its variable.
pub struct SecretInput {
    what: &'static str,
    short: &'static str,
    kind: &'static str,
    flag: &'static str,
    env: &'static str,
}

pub const API_KEY: SecretInput = SecretInput {
    what: "the Prefect API key",
    short: "the key",
    kind: "an API key",
    flag: "--prefect-api-key-file",
    env: "PREFECT_API_KEY",
};

pub const AUTH_STRING: SecretInput = SecretInput {
    what: "the Prefect API auth string",
    short: "the auth string",
    kind: "an auth string",
    flag: "--prefect-api-auth-string-file",
    env: "PREFECT_API_AUTH_STRING",
};

/// A credential's text (checked later by its validator); never more than a few KiB are read.
pub fn read(path: &Path, input: &SecretInput) -> Result<String, CliError> {
    let bytes = if path.as_os_str() == "-" {
        bounded(std::io::stdin().lock(), path, input)?
    } else {
        bounded(open_regular(path, input)?, path, input)?
    };
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        return Err(CliError::BadInput(format!(
            "{} {}: the file is UTF-16 (it starts with a UTF-16 byte-order mark; Windows' \"Unicode\"): save it as plain UTF-8 text",
            input.flag,
            path.display()
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        CliError::BadInput(format!(
            "{} {}: the file is not UTF-8 text (an invalid byte at byte {}): it should hold just {}",
            input.flag,
            path.display(),
            e.utf8_error().valid_up_to() + 1,
            input.short
        ))
    })
}

/// Reads at most one byte past the limit: enough to tell "too big" without reading it all.
fn bounded(reader: impl Read, path: &Path, input: &SecretInput) -> Result<Vec<u8>, CliError> {
    // Room for the longest credential in 4-byte characters plus a line break.
    let limit = (MAX_SECRET_LEN * 4 + 2) as u64;
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot_read(path, input, &e))?;
    if bytes.len() as u64 > limit {
        let check = if path.as_os_str() == "-" {
            "check what is piped in"
        } else {
            "check the path"
        };
        return Err(CliError::BadInput(format!(
            "{} {}: more than {limit} bytes, far more than {} (a Prefect API key is about 40 characters): {check}",
            input.flag,
            path.display(),
            input.short
        )));
    }
    Ok(bytes)
}

/// Opens `path` if it is a regular file (following symlinks); a device, FIFO or directory is
/// refused before it is opened (opening a FIFO would wait for a writer).
fn open_regular(path: &Path, input: &SecretInput) -> Result<std::fs::File, CliError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound && looks_like_a_secret(path) {
            // Someone passed the secret itself: say so without printing it (CI logs, terminals).
            return CliError::BadInput(format!(
                "{} takes the path of a file holding {short}, but the value given is not a file and looks like {} (not shown): set {} instead, or put {short} in a file",
                input.flag,
                input.kind,
                input.env,
                short = input.short
            ));
        }
        cannot_read(path, input, &e)
    })?;
    if !meta.is_file() {
        return Err(CliError::BadInput(format!(
            "{} {} is {}, not a regular file: put {} in a file, or pipe it in with `{} -`",
            input.flag,
            path.display(),
            file_type(&meta),
            input.short,
            input.flag
        )));
    }
    std::fs::File::open(path).map_err(|e| cannot_read(path, input, &e))
}

fn file_type(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_fifo() {
        "a pipe"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn cannot_read(path: &Path, input: &SecretInput, e: &std::io::Error) -> CliError {
    CliError::BadInput(format!(
        "cannot read {} from {} {}: {e}",
        input.what,
        input.flag,
        path.display()
    ))
}

/// Prefect API keys start with `pnu_` (user) or `pnb_` (service account); an auth string is
/// `user:password`. No path a person means looks like either.
fn looks_like_a_secret(path: &Path) -> bool {
    let text = path.to_string_lossy();
    let key = (text.starts_with("pnu_") || text.starts_with("pnb_")) && !text.contains('/');
    let auth = text.contains(':') && !text.contains('/');
    key || auth
}
