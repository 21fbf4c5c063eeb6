//! The Prefect credentials as people paste them: a key copied from a web page with a zero-width
//! space in it, a file saved "UTF-8 with BOM", a whole `export PREFECT_API_KEY=…` line. Each is
//! refused naming the character (or the mistake) and its position, never the secret itself.

use super::{err, ApiKey, InputError};

/// Longest credential accepted (and the most a key file may hold): a Prefect key is about 40
/// characters; anything near this is the wrong file.
pub const MAX_SECRET_LEN: usize = 4096;

/// A credential being checked: how messages name it and what it should look like.
struct Kind {
    what: &'static str,
    fix: &'static str,
}

const KEY: Kind = Kind {
    what: "the Prefect API key",
    fix: "check PREFECT_API_KEY or the key file holds just the key (copy it again from Prefect if it was pasted)",
};

const AUTH: Kind = Kind {
    what: "the Prefect API auth string",
    fix: "check PREFECT_API_AUTH_STRING or the file holds just user:password",
};

/// Keys are single tokens of visible ASCII (they travel in an HTTP header); whitespace or any
/// other character inside one is a copy-paste accident.
pub fn validate_api_key(raw: &str) -> Result<ApiKey, InputError> {
    let key = raw.trim_end_matches(['\n', '\r']);
    if key.trim().is_empty() {
        return Err(err(
            "the Prefect API key is empty: set PREFECT_API_KEY or pass --prefect-api-key-file with a non-empty file",
        ));
    }
    check_pasted(&KEY, key)?;
    if let Some((at, c)) = first(key, |c| !c.is_ascii_graphic()) {
        return Err(bad_char(&KEY, key, at, c));
    }
    Ok(ApiKey(key.to_string()))
}

/// A basic-auth string for a self-hosted server (`PREFECT_API_AUTH_STRING`): `user:password`.
/// A password may hold spaces and non-ASCII letters, but nothing invisible.
pub fn validate_auth_string(raw: &str) -> Result<ApiKey, InputError> {
    let auth = raw.trim_end_matches(['\n', '\r']);
    if auth.trim().is_empty() {
        return Err(err(
            "the Prefect API auth string is empty: set PREFECT_API_AUTH_STRING or pass --prefect-api-auth-string-file with a non-empty file",
        ));
    }
    check_pasted(&AUTH, auth)?;
    if let Some((at, c)) = first(auth, |c| invisible(c).is_some()) {
        return Err(bad_char(&AUTH, auth, at, c));
    }
    if !auth.contains(':') {
        return Err(err(
            "the Prefect API auth string must be one line of the form user:password (as PREFECT_API_AUTH_STRING is for the server): check the variable or the file",
        ));
    }
    Ok(ApiKey(auth.to_string()))
}

/// The mistakes of pasting: a byte-order mark, a whole shell line, quotes, a huge value.
fn check_pasted(kind: &Kind, value: &str) -> Result<(), InputError> {
    let what = kind.what;
    if value.starts_with('\u{feff}') {
        return Err(err(format!(
            "{what} starts with a byte-order mark (U+FEFF, invisible; the file was saved as \"UTF-8 with BOM\"): save it as plain UTF-8, or {}",
            kind.fix
        )));
    }
    if let Some(line) = shell_assignment(value) {
        return Err(err(format!(
            "{what} is a whole shell line `{line}…` (value not shown): give only what comes after the `=`, e.g. run the line itself in your shell, or put just the value in the file"
        )));
    }
    let quoted = ['"', '\'']
        .iter()
        .any(|q| value.len() >= 2 && value.starts_with(*q) && value.ends_with(*q));
    if quoted {
        return Err(err(format!(
            "{what} is wrapped in quotes (value not shown): the quotes are not part of it; remove them"
        )));
    }
    let len = value.chars().count();
    if len > MAX_SECRET_LEN {
        return Err(err(format!(
            "{what} is {len} characters long, more than {MAX_SECRET_LEN}: {}",
            kind.fix
        )));
    }
    Ok(())
}

/// `PREFECT_API_KEY=`, `export PREFECT_API_KEY=`, `set …=` or `$env:…=` at the start of a
/// pasted value: that prefix, which is no secret, to show.
fn shell_assignment(value: &str) -> Option<&str> {
    let body = ["export ", "set ", "$env:"]
        .iter()
        .find_map(|p| value.strip_prefix(p).map(str::trim_start))
        .unwrap_or(value);
    let name_len = body.find('=')?;
    let name = &body[..name_len];
    let is_name =
        name.starts_with("PREFECT_") && name.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    is_name.then(|| &value[..value.len() - body.len() + name_len + 1])
}

/// The first character matching `bad`, with its 1-based position in characters.
fn first(value: &str, bad: impl Fn(char) -> bool) -> Option<(usize, char)> {
    value
        .chars()
        .enumerate()
        .find(|(_, c)| bad(*c))
        .map(|(i, c)| (i + 1, c))
}

fn bad_char(kind: &Kind, value: &str, at: usize, c: char) -> InputError {
    let len = value.chars().count();
    err(format!(
        "{} has {} at character {at} of {len} (value not shown): {}",
        kind.what,
        describe(c),
        kind.fix
    ))
}

/// A character named for a person who cannot see it: its code point and what it is.
pub fn describe(c: char) -> String {
    let code = format!("U+{:04X}", u32::from(c));
    let name = match c {
        ' ' => "a space",
        '\t' => "a tab",
        '\n' => "a line break (more than one line)",
        '\r' => "a carriage return",
        c if c.is_control() => "a control character",
        c => match invisible(c) {
            Some(name) => name,
            None if c.is_whitespace() => "a non-ASCII space",
            None => "a non-ASCII character (keys are ASCII letters, digits and _)",
        },
    };
    format!("{code} ({name})")
}

/// A character refused in a visible input (a tag): itself when it can be seen, else its name.
pub fn describe_in_text(c: char) -> String {
    if c.is_whitespace() || invisible(c).is_some() {
        describe(c)
    } else {
        format!("'{c}' (U+{:04X})", u32::from(c))
    }
}

/// Characters that print as nothing: their name, or `None` for a visible character.
pub fn invisible(c: char) -> Option<&'static str> {
    Some(match c {
        c if c.is_control() => "a control character",
        '\u{feff}' => "a zero-width no-break space / byte-order mark, invisible",
        '\u{200b}' => "a zero-width space, invisible",
        '\u{200c}' => "a zero-width non-joiner, invisible",
        '\u{200d}' => "a zero-width joiner, invisible",
        '\u{2060}' => "a word joiner, invisible",
        '\u{00ad}' => "a soft hyphen, invisible",
        '\u{200e}' | '\u{200f}' | '\u{061c}' => "a text direction mark, invisible",
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => "a text direction control, invisible",
        '\u{2061}'..='\u{2064}' | '\u{206a}'..='\u{206f}' | '\u{180e}' | '\u{034f}' => {
            "an invisible formatting character"
        }
        '\u{fff9}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}' => "an invisible formatting character",
        '\u{fe00}'..='\u{fe0f}' => "a variation selector, invisible",
        '\u{3164}' | '\u{115f}' | '\u{1160}' | '\u{ffa0}' => "a blank filler character, invisible",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(result: Result<ApiKey, InputError>) -> String {
        result.expect_err("accepted").0
    }

    #[test]
    fn api_keys_as_pasted() {
        assert_eq!(validate_api_key("pnu_x\n").unwrap().expose(), "pnu_x");
        assert_eq!(validate_api_key("pnu_x\r\n").unwrap().expose(), "pnu_x");
        for bad in ["", "\n", "pnu x", "pnu\tx", "a\nb"] {
            assert!(validate_api_key(bad).is_err(), "{bad:?} accepted");
        }
        let cases = [
            ("\u{feff}pnu_secret1", "byte-order mark"),
            (
                "pnu_sec\u{200b}ret1",
                "U+200B (a zero-width space, invisible) at character 8 of 12",
            ),
            (
                "pnu_secret1\u{00a0}",
                "U+00A0 (a non-ASCII space) at character 12 of 12",
            ),
            (
                "pnu_secret1\u{7}",
                "U+0007 (a control character) at character 12",
            ),
            (
                "pnu_secret1\npnu_secret1",
                "U+000A (a line break (more than one line)) at character 12",
            ),
            (" pnu_secret1", "U+0020 (a space) at character 1 of 12"),
            ("pnu_sécret1", "U+00E9 (a non-ASCII character"),
            (
                "pnu_secret1\u{202e}",
                "U+202E (a text direction control, invisible)",
            ),
            (
                "PREFECT_API_KEY=pnu_secret1",
                "whole shell line `PREFECT_API_KEY=…`",
            ),
            (
                "export PREFECT_API_KEY=pnu_secret1",
                "`export PREFECT_API_KEY=…`",
            ),
            (
                "export  PREFECT_API_KEY=\"pnu_secret1\"",
                "`export  PREFECT_API_KEY=…`",
            ),
            (
                "$env:PREFECT_API_KEY=pnu_secret1",
                "`$env:PREFECT_API_KEY=…`",
            ),
            ("\"pnu_secret1\"", "wrapped in quotes"),
        ];
        for (bad, says) in cases {
            let text = refusal(validate_api_key(bad));
            assert!(text.contains(says), "{bad:?}: {text}");
            assert!(!text.contains("secret1"), "{bad:?} echoed the key: {text}");
        }
        let long = "k".repeat(MAX_SECRET_LEN + 1);
        assert!(refusal(validate_api_key(&long)).contains("4097 characters long"));
    }

    #[test]
    fn auth_strings_as_pasted() {
        for ok in ["user:pässwörd", "user:pass word", "admin:x\n"] {
            assert!(validate_auth_string(ok).is_ok(), "{ok:?} refused");
        }
        let cases = [
            ("\u{feff}user:secret1", "byte-order mark"),
            (
                "user:sec\u{200d}ret1",
                "U+200D (a zero-width joiner, invisible) at character 9 of 13",
            ),
            ("user:secret1\tx", "U+0009 (a tab) at character 13"),
            (
                "PREFECT_API_AUTH_STRING=user:secret1",
                "`PREFECT_API_AUTH_STRING=…`",
            ),
            (
                "export PREFECT_API_AUTH_STRING='user:secret1'",
                "`export PREFECT_API_AUTH_STRING=…`",
            ),
            ("usersecret1", "user:password"),
        ];
        for (bad, says) in cases {
            let text = refusal(validate_auth_string(bad));
            assert!(text.contains(says), "{bad:?}: {text}");
            assert!(
                !text.contains("secret1"),
                "{bad:?} echoed the secret: {text}"
            );
        }
    }

    #[test]
    fn only_prefect_variables_count_as_a_pasted_line() {
        assert_eq!(
            shell_assignment("PREFECT_API_KEY=x"),
            Some("PREFECT_API_KEY=")
        );
        assert_eq!(
            shell_assignment("set PREFECT_API_KEY=x"),
            Some("set PREFECT_API_KEY=")
        );
        assert_eq!(shell_assignment("user=a:b"), None);
        assert_eq!(shell_assignment("pnu_x"), None);
    }
}
