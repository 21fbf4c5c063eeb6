//! Comparing what a person reads as a whole: ids, ARNs, times and durations that differ from run
//! to run become placeholders, so an expected text can be written out in full, like the README.
//!
//! | in the output                               | placeholder  |
//! |---------------------------------------------|--------------|
//! | `arn:aws:…` (up to a space, quote or comma) | `[ARN]`      |
//! | `vpc-0a1b…`, `subnet-…`, `sg-…`, `igw-…`, `rtb-…` | `[VPC]`, `[SUBNET]`, `[SG]`, `[IGW]`, `[RTB]` |
//! | a 12-digit account id                        | `[ACCOUNT]`  |
//! | an RFC 3339 time, `2024-05-01T12:00:00Z`     | `[TIME]`     |
//! | a duration, `1.2s`, `350ms`, `2m05s`         | `[ELAPSED]`  |
//! | an ECS deployment, `ecs-svc/1234567890123456789` | `[DEPLOYMENT]` |
//!
//! Everything else must match exactly, so wording, order, spacing and line breaks are checked.

/// EC2 id prefixes and their placeholders. An id is the prefix and 8 or 17 hex digits.
const EC2_IDS: [(&str, &str); 5] = [
    ("vpc-", "[VPC]"),
    ("subnet-", "[SUBNET]"),
    ("sg-", "[SG]"),
    ("igw-", "[IGW]"),
    ("rtb-", "[RTB]"),
];

/// `text` with run-specific values replaced by placeholders (see the module docs). `extra` are
/// literal replacements made first, e.g. a temporary directory's path by `[STATE]`.
pub fn normalize(text: &str, extra: &[(String, &str)]) -> String {
    let mut text = text.to_owned();
    for (literal, placeholder) in extra {
        text = text.replace(literal.as_str(), placeholder);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        let at_word_start = !out.chars().next_back().is_some_and(is_word);
        let matched = if at_word_start {
            arn(rest)
                .or_else(|| ec2_id(rest))
                .or_else(|| deployment(rest))
                .or_else(|| time(rest))
                .or_else(|| duration(rest))
                .or_else(|| account(rest))
        } else {
            None
        };
        match matched {
            Some((len, placeholder)) => {
                out.push_str(placeholder);
                rest = &rest[len..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// Panics, showing both texts and the first line that differs, unless `actual` normalised
/// (see [`normalize`]) is `expected`.
pub fn assert_text(actual: &str, expected: &str, extra: &[(String, &str)]) {
    let normalized = normalize(actual, extra);
    if normalized == expected {
        return;
    }
    let first_difference = normalized
        .lines()
        .zip(expected.lines())
        .position(|(a, e)| a != e)
        .unwrap_or_else(|| normalized.lines().count().min(expected.lines().count()));
    panic!(
        "the text differs from line {}:\n  got:      {:?}\n  expected: {:?}\n\
         --- got (normalised)\n{normalized}\n--- expected\n{expected}\n--- got (as printed)\n{actual}",
        first_difference + 1,
        normalized.lines().nth(first_difference).unwrap_or("<end>"),
        expected.lines().nth(first_difference).unwrap_or("<end>"),
    );
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Length of the longest prefix of `s` whose characters all satisfy `f`.
fn span(s: &str, f: impl Fn(char) -> bool) -> usize {
    s.find(|c: char| !f(c)).unwrap_or(s.len())
}

/// Whether `s` continues with no more of a word (so a match does not end inside one).
fn ends_word(s: &str) -> bool {
    !s.chars().next().is_some_and(is_word)
}

fn arn(s: &str) -> Option<(usize, &'static str)> {
    s.starts_with("arn:aws:").then(|| {
        let len = span(s, |c| {
            !c.is_whitespace() && !matches!(c, '"' | '\'' | ',' | ')' | ']' | '`')
        });
        (len, "[ARN]")
    })
}

fn ec2_id(s: &str) -> Option<(usize, &'static str)> {
    EC2_IDS.iter().find_map(|(prefix, placeholder)| {
        let hex = span(s.strip_prefix(prefix)?, |c| {
            c.is_ascii_digit() || ('a'..='f').contains(&c)
        });
        let len = prefix.len() + hex;
        (matches!(hex, 8 | 17) && ends_word(&s[len..])).then_some((len, *placeholder))
    })
}

fn deployment(s: &str) -> Option<(usize, &'static str)> {
    let digits = span(s.strip_prefix("ecs-svc/")?, |c| c.is_ascii_digit());
    let len = "ecs-svc/".len() + digits;
    (digits > 0 && ends_word(&s[len..])).then_some((len, "[DEPLOYMENT]"))
}

fn account(s: &str) -> Option<(usize, &'static str)> {
    let len = span(s, |c| c.is_ascii_digit());
    (len == 12 && ends_word(&s[len..])).then_some((len, "[ACCOUNT]"))
}

/// `YYYY-MM-DDTHH:MM:SS`, optional fraction, then `Z` or `±HH:MM`.
fn time(s: &str) -> Option<(usize, &'static str)> {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range.clone())
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let shape = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    if !shape {
        return None;
    }
    let mut len = 19;
    if b.get(len) == Some(&b'.') {
        len += 1 + span(&s[len + 1..], |c| c.is_ascii_digit());
    }
    match b.get(len) {
        Some(b'Z') => len += 1,
        Some(b'+' | b'-') if digits(len + 1..len + 3) && b.get(len + 3) == Some(&b':') => len += 6,
        _ => return None,
    }
    Some((len, "[TIME]"))
}

/// A number with a unit of time, or several run together: `1.2s`, `350ms`, `2m05s`, `1h2m`.
fn duration(s: &str) -> Option<(usize, &'static str)> {
    let mut len = 0;
    loop {
        let rest = &s[len..];
        let number = span(rest, |c| c.is_ascii_digit());
        if number == 0 {
            break;
        }
        let mut end = number;
        if rest[end..].starts_with('.') {
            let fraction = span(&rest[end + 1..], |c| c.is_ascii_digit());
            if fraction == 0 {
                break;
            }
            end += 1 + fraction;
        }
        let unit = ["ms", "µs", "h", "m", "s"]
            .iter()
            .find(|unit| rest[end..].starts_with(**unit))?;
        len += end + unit.len();
    }
    (len > 0 && ends_word(&s[len..])).then_some((len, "[ELAPSED]"))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn placeholders_replace_what_differs_between_runs() {
        let text = "vpc-0a1b2c3d4e5f60718 in subnet-1a2b3c4d, sg-0123456789abcdef0 \
                    igw-12345678 rtb-abcdef01 arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf \
                    (123456789012) at 2024-05-01T12:00:00.123Z / 2024-05-01T12:00:00+02:00 took 1.2s, 350ms, 2m05s \
                    in ecs-svc/1054115757002277356.";
        assert_eq!(
            normalize(text, &[]),
            "[VPC] in [SUBNET], [SG] [IGW] [RTB] [ARN] ([ACCOUNT]) at [TIME] / [TIME] took \
             [ELAPSED], [ELAPSED], [ELAPSED] in [DEPLOYMENT]."
        );
    }

    #[test]
    fn words_and_numbers_that_only_look_alike_stay() {
        let text = "ecsctl-pool-subnet-a 512 CPU units, 30 days, 1024 MiB, my-vpc-1 vpc-xyz 1s2";
        assert_eq!(normalize(text, &[]), text);
    }
}
