//! Bad invocations of every command: each must exit 2 with a message naming the problem, before
//! any AWS or Prefect call and without writing anything to the state directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::cli::{refused_endpoint, Ecsctl, Output};
use crate::support::emulator::Emulator;
use crate::support::prefect::{self, API_KEY, API_URL};
use crate::support::proxy::Proxy;

/// A key mistakenly given where a file path belongs; it must never be printed.
const KEY_AS_PATH: &str = "pnu_typedinsteadofapath_5f3a9c";
/// A key with a space in it (a copy-paste accident); it must never be printed either.
const KEY_WITH_SPACE: &str = "pnu_copied twice_77ab";

/// A key as pasted into the rows below; none of them may ever be printed.
const PASTED: &str = "pnu_pastedsecret0042";
/// An auth string's password, likewise.
const PASSWORD: &str = "pastedpassword0042";

/// One bad invocation and what ecsctl must say about it.
struct Row {
    label: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// A file to read standard input from (none: empty).
    stdin: Option<PathBuf>,
    /// Every one of these must appear on stderr.
    says: Vec<String>,
    /// None of these may appear anywhere in the output (secrets).
    never_says: Vec<String>,
}

fn owned(strs: &[&str]) -> Vec<String> {
    strs.iter().map(|s| s.to_string()).collect()
}

impl Row {
    fn new(label: &str, args: &[&str]) -> Row {
        Row {
            label: label.to_owned(),
            args: owned(args),
            env: Vec::new(),
            stdin: None,
            says: Vec::new(),
            never_says: Vec::new(),
        }
    }

    /// `bootstrap --pool ok-pool --yes --no-wait <args>` with a valid API URL and key in the
    /// environment, so only `args` is wrong.
    fn bootstrap(label: &str, args: &[&str]) -> Row {
        let mut all = vec!["bootstrap", "--pool", "ok-pool", "--yes", "--no-wait"];
        all.extend_from_slice(args);
        Row::new(label, &all)
            .env("PREFECT_API_URL", API_URL)
            .env("PREFECT_API_KEY", API_KEY)
    }

    fn env(mut self, key: &str, value: &str) -> Row {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    fn without_env(mut self, key: &str) -> Row {
        self.env.retain(|(k, _)| k != key);
        self
    }

    fn stdin(mut self, file: &Path) -> Row {
        self.stdin = Some(file.to_path_buf());
        self
    }

    fn says(mut self, needles: &[&str]) -> Row {
        self.says.extend(owned(needles));
        self
    }

    fn never_says(mut self, needles: &[&str]) -> Row {
        self.never_says.extend(owned(needles));
        self
    }
}

/// `prefect_url`: a self-hosted server's API URL (through a recording proxy), for rows that must
/// fail before calling it.
fn rows(files: &Path, prefect_url: &str) -> Vec<Row> {
    let long_pool = "p".repeat(41);
    let empty_key = files.join("empty-key").display().to_string();
    let spaced_key = files.join("spaced-key").display().to_string();
    let missing_key = files.join("no-such-key-file").display().to_string();
    let key_flag = format!("--prefect-api-key={API_KEY}");
    let file = |name: &str| files.join(name).display().to_string();
    let e = "é";
    let long_key_tag = format!("{}=v", e.repeat(129));
    let long_value_tag = format!("k={}", e.repeat(257));

    vec![
        // --- pool names
        Row::new(
            "bootstrap: empty pool name",
            &["bootstrap", "--pool", "", "--yes"],
        )
        .env("PREFECT_API_URL", API_URL)
        .env("PREFECT_API_KEY", API_KEY)
        .says(&["the pool name is empty"]),
        Row::new(
            "bootstrap: pool name of 41 characters",
            &["bootstrap", "--pool", &long_pool, "--yes"],
        )
        .env("PREFECT_API_URL", API_URL)
        .env("PREFECT_API_KEY", API_KEY)
        .says(&["is 41 characters long", "1-40"]),
        Row::new(
            "bootstrap: pool name with a space",
            &["bootstrap", "--pool", "my pool", "--yes"],
        )
        .env("PREFECT_API_URL", API_URL)
        .env("PREFECT_API_KEY", API_KEY)
        .says(&["pool name 'my pool' contains ' '"]),
        Row::new(
            "bootstrap: pool name with a slash",
            &["bootstrap", "--pool", "team/pool", "--yes"],
        )
        .env("PREFECT_API_URL", API_URL)
        .env("PREFECT_API_KEY", API_KEY)
        .says(&["pool name 'team/pool' contains '/'"]),
        Row::new(
            "bootstrap: pool name with a leading dash",
            &["bootstrap", "--pool=-pool", "--yes"],
        )
        .env("PREFECT_API_URL", API_URL)
        .env("PREFECT_API_KEY", API_KEY)
        .says(&["'-pool' must start with a letter or digit"]),
        Row::new(
            "bootstrap: bad pool name from ECSCTL_POOL",
            &["bootstrap", "--yes"],
        )
        .env("ECSCTL_POOL", "bad.pool")
        .env("PREFECT_API_URL", API_URL)
        .env("PREFECT_API_KEY", API_KEY)
        .says(&["pool name 'bad.pool' contains '.'"]),
        // Prefect refuses pool names starting with "prefect", in any case (HTTP 403).
        Row::new(
            "bootstrap: pool name starting with prefect",
            &["bootstrap", "--pool", "prefect-x", "--yes"],
        )
        .env("PREFECT_API_URL", prefect_url)
        .says(&[
            "the pool name 'prefect-x' starts with 'prefect'",
            "Prefect reserves",
        ]),
        Row::new(
            "bootstrap: pool name starting with Prefect, another case",
            &["bootstrap", "--pool", "PrefectPool", "--yes"],
        )
        .env("PREFECT_API_URL", prefect_url)
        .says(&["the pool name 'PrefectPool' starts with 'prefect'"]),
        Row::new(
            "bootstrap: pool name with a '%' (Prefect refuses / % & > <)",
            &["bootstrap", "--pool", "pool%41", "--yes"],
        )
        .env("PREFECT_API_URL", prefect_url)
        .says(&["pool name 'pool%41' contains '%'"]),
        Row::new(
            "destroy: pool name starting with prefect",
            &["destroy", "--pool", "prefect", "--yes"],
        )
        .env("PREFECT_API_URL", prefect_url)
        .says(&["the pool name 'prefect' starts with 'prefect'"]),
        // --- task size, count, retention
        Row::bootstrap(
            "bootstrap: --cpu that Fargate does not offer",
            &["--cpu", "300"],
        )
        .says(&["--cpu 300 is not a Fargate CPU size", "256, 512, 1024"]),
        Row::bootstrap(
            "bootstrap: too much memory for 256 CPU",
            &["--cpu", "256", "--memory", "4096"],
        )
        .says(&[
            "--memory 4096 is not allowed with --cpu 256",
            "512, 1024, 2048",
        ]),
        Row::bootstrap(
            "bootstrap: too little memory for 1024 CPU",
            &["--cpu", "1024", "--memory", "1024"],
        )
        .says(&["--memory 1024 is not allowed with --cpu 1024", "2048-8192"]),
        Row::bootstrap(
            "bootstrap: --memory no CPU size allows",
            &["--memory", "3000"],
        )
        .says(&["--memory 3000 is not allowed"]),
        Row::bootstrap("bootstrap: --memory not a number", &["--memory", "1GB"])
            .says(&["invalid value '1GB' for '--memory <MIB>'"]),
        Row::bootstrap(
            "bootstrap: retention CloudWatch does not offer",
            &["--log-retention-days", "31"],
        )
        .says(&[
            "--log-retention-days 31 is not a CloudWatch Logs retention",
            "30, 60",
        ]),
        Row::bootstrap(
            "bootstrap: desired count too large",
            &["--desired-count", "101"],
        )
        .says(&["--desired-count 101 is more than 100"]),
        Row::bootstrap("bootstrap: negative desired count", &["--desired-count=-1"])
            .says(&["invalid value '-1' for '--desired-count <N>'"]),
        Row::bootstrap(
            "bootstrap: several problems at once are all reported",
            &[
                "--cpu",
                "300",
                "--log-retention-days",
                "2",
                "--tag",
                "novalue",
            ],
        )
        .says(&["--cpu 300", "--log-retention-days 2", "--tag 'novalue'"]),
        // --- Prefect API URL
        Row::bootstrap("bootstrap: PREFECT_API_URL is not a URL", &[])
            .env("PREFECT_API_URL", "prefect.example.com")
            .says(&["the Prefect API URL 'prefect.example.com' is not a URL"]),
        Row::bootstrap("bootstrap: PREFECT_API_URL is ftp://", &[])
            .env("PREFECT_API_URL", "ftp://prefect.example.com/api")
            .says(&["must start with https:// or http://"]),
        Row::bootstrap("bootstrap: Prefect Cloud URL without a workspace", &[])
            .env("PREFECT_API_URL", "https://api.prefect.cloud/api")
            .says(&[
                "not a Prefect Cloud workspace API URL",
                "/workspaces/<workspace-id>",
            ]),
        Row::bootstrap(
            "bootstrap: Prefect Cloud UI URL instead of the API URL",
            &[],
        )
        .env(
            "PREFECT_API_URL",
            "https://app.prefect.cloud/account/1/workspace/2",
        )
        .says(&["not a Prefect Cloud workspace API URL"]),
        Row::bootstrap(
            "bootstrap: --prefect-api-url without a host",
            &["--prefect-api-url", "http://"],
        )
        .says(&["the Prefect API URL 'http://'"]),
        Row::bootstrap("bootstrap: PREFECT_API_URL missing", &[])
            .without_env("PREFECT_API_URL")
            .says(&["missing input", "--prefect-api-url or PREFECT_API_URL"]),
        // --- Prefect API key
        Row::bootstrap("bootstrap: API key missing", &[])
            .without_env("PREFECT_API_KEY")
            .says(&[
                "missing input",
                "non-interactive",
                "PREFECT_API_KEY",
                "--prefect-api-key-file",
            ]),
        Row::bootstrap("bootstrap: PREFECT_API_KEY set but empty", &[])
            .env("PREFECT_API_KEY", "")
            .says(&["missing input", "PREFECT_API_KEY"]),
        Row::bootstrap(
            "bootstrap: empty key file",
            &["--prefect-api-key-file", &empty_key],
        )
        .without_env("PREFECT_API_KEY")
        .says(&["the Prefect API key is empty"]),
        Row::bootstrap(
            "bootstrap: key file that does not exist",
            &["--prefect-api-key-file", &missing_key],
        )
        .without_env("PREFECT_API_KEY")
        .says(&[
            "cannot read the Prefect API key from --prefect-api-key-file",
            &missing_key,
        ]),
        Row::bootstrap(
            "bootstrap: the key itself given as the key file",
            &["--prefect-api-key-file", KEY_AS_PATH],
        )
        .without_env("PREFECT_API_KEY")
        .says(&[
            "--prefect-api-key-file",
            "looks like an API key",
            "PREFECT_API_KEY",
        ])
        .never_says(&[KEY_AS_PATH]),
        Row::bootstrap(
            "bootstrap: key from an empty stdin",
            &["--prefect-api-key-file", "-"],
        )
        .without_env("PREFECT_API_KEY")
        .says(&["the Prefect API key is empty"]),
        Row::bootstrap("bootstrap: key with whitespace in PREFECT_API_KEY", &[])
            .env("PREFECT_API_KEY", KEY_WITH_SPACE)
            .says(&["the Prefect API key has U+0020 (a space) at character 11 of 21"])
            .never_says(&[KEY_WITH_SPACE, "copied twice"]),
        Row::bootstrap(
            "bootstrap: key file holding a key with whitespace",
            &["--prefect-api-key-file", &spaced_key],
        )
        .without_env("PREFECT_API_KEY")
        .says(&["the Prefect API key has U+0020 (a space) at character 11 of 21"])
        .never_says(&[KEY_WITH_SPACE, "copied twice"]),
        Row::bootstrap(
            "bootstrap: --prefect-api-key is not a flag",
            &["--prefect-api-key", "x"],
        )
        .says(&["unexpected argument '--prefect-api-key' found"]),
        Row::bootstrap(
            "bootstrap: --prefect-api-key=<key> is not a flag and not echoed",
            &[&key_flag],
        )
        .says(&["unexpected argument '--prefect-api-key' found"])
        .never_says(&[API_KEY]),
        // --- keys and auth strings as people paste them (env, file, stdin)
        Row::bootstrap(
            "bootstrap: key file saved with a byte-order mark",
            &["--prefect-api-key-file", &file("bom-key")],
        )
        .without_env("PREFECT_API_KEY")
        .says(&[
            "the Prefect API key starts with a byte-order mark (U+FEFF",
            "UTF-8 with BOM",
        ])
        .never_says(&[PASTED]),
        Row::bootstrap(
            "bootstrap: key file saved as UTF-16",
            &["--prefect-api-key-file", &file("utf16-key")],
        )
        .without_env("PREFECT_API_KEY")
        .says(&["the file is UTF-16", "save it as plain UTF-8"])
        .never_says(&[PASTED]),
        Row::bootstrap(
            "bootstrap: key with a zero-width space in PREFECT_API_KEY",
            &[],
        )
        .env("PREFECT_API_KEY", "pnu_pasted\u{200b}secret0042")
        .says(&["U+200B (a zero-width space, invisible) at character 11 of 21"])
        .never_says(&["pastedsecret", "secret0042"]),
        Row::bootstrap("bootstrap: key with a no-break space at its end", &[])
            .env("PREFECT_API_KEY", &format!("{PASTED}\u{a0}"))
            .says(&["U+00A0 (a non-ASCII space) at character 21 of 21"])
            .never_says(&[PASTED]),
        Row::bootstrap("bootstrap: key with a control character", &[])
            .env("PREFECT_API_KEY", &format!("{PASTED}\u{1b}"))
            .says(&["U+001B (a control character) at character 21"])
            .never_says(&[PASTED]),
        Row::bootstrap(
            "bootstrap: a whole PREFECT_API_KEY=… line in PREFECT_API_KEY",
            &[],
        )
        .env("PREFECT_API_KEY", &format!("PREFECT_API_KEY={PASTED}"))
        .says(&["whole shell line `PREFECT_API_KEY=…`"])
        .never_says(&[PASTED]),
        Row::bootstrap(
            "bootstrap: a whole export line in the key file",
            &["--prefect-api-key-file", &file("export-line-key")],
        )
        .without_env("PREFECT_API_KEY")
        .says(&["whole shell line `export PREFECT_API_KEY=…`"])
        .never_says(&[PASTED]),
        Row::bootstrap(
            "bootstrap: key file /dev/zero",
            &["--prefect-api-key-file", "/dev/zero"],
        )
        .without_env("PREFECT_API_KEY")
        .says(&["--prefect-api-key-file /dev/zero is a device, not a regular file"]),
        Row::bootstrap(
            "bootstrap: key file is a directory",
            &["--prefect-api-key-file", &file("a-directory")],
        )
        .without_env("PREFECT_API_KEY")
        .says(&["is a directory, not a regular file"]),
        Row::bootstrap(
            "bootstrap: key file far too big",
            &["--prefect-api-key-file", &file("huge-key")],
        )
        .without_env("PREFECT_API_KEY")
        .says(&["more than 16386 bytes", "check the path"])
        .never_says(&[PASTED]),
        Row::bootstrap(
            "bootstrap: key from stdin that never ends (/dev/zero)",
            &["--prefect-api-key-file", "-"],
        )
        .without_env("PREFECT_API_KEY")
        .stdin(Path::new("/dev/zero"))
        .says(&[
            "--prefect-api-key-file -: more than 16386 bytes",
            "check what is piped in",
        ]),
        Row::bootstrap(
            "bootstrap: key from stdin with a byte-order mark",
            &["--prefect-api-key-file", "-"],
        )
        .without_env("PREFECT_API_KEY")
        .stdin(&files.join("bom-key"))
        .says(&["starts with a byte-order mark"])
        .never_says(&[PASTED]),
        Row::bootstrap("bootstrap: auth string with a byte-order mark", &[])
            .env(
                "PREFECT_API_AUTH_STRING",
                &format!("\u{feff}admin:{PASSWORD}"),
            )
            .says(&["the Prefect API auth string starts with a byte-order mark"])
            .never_says(&[PASSWORD]),
        Row::bootstrap("bootstrap: auth string with a zero-width joiner", &[])
            .env(
                "PREFECT_API_AUTH_STRING",
                &format!("admin:{PASSWORD}\u{200d}"),
            )
            .says(&["U+200D (a zero-width joiner, invisible) at character 25 of 25"])
            .never_says(&[PASSWORD]),
        Row::bootstrap(
            "bootstrap: a whole export line in the auth string file",
            &["--prefect-api-auth-string-file", &file("export-line-auth")],
        )
        .says(&["whole shell line `export PREFECT_API_AUTH_STRING=…`"])
        .never_says(&[PASSWORD]),
        Row::bootstrap(
            "bootstrap: auth string file /dev/zero",
            &["--prefect-api-auth-string-file", "/dev/zero"],
        )
        .says(&["--prefect-api-auth-string-file /dev/zero is a device, not a regular file"]),
        Row::bootstrap("bootstrap: empty --image", &["--image", ""])
            .says(&["the image '' is not a container image reference"]),
        // --- tags
        Row::bootstrap("bootstrap: --tag without '='", &["--tag", "team"])
            .says(&["--tag 'team' is not KEY=VALUE"]),
        Row::bootstrap(
            "bootstrap: --tag with the reserved aws: prefix",
            &["--tag", "aws:owner=me"],
        )
        .says(&["--tag 'aws:owner=me'", "reserved"]),
        Row::bootstrap(
            "bootstrap: --tag with the reserved ecsctl: prefix",
            &["--tag", "ECSCTL:pool=other"],
        )
        .says(&["--tag 'ECSCTL:pool=other'", "reserved"]),
        Row::bootstrap(
            "bootstrap: --tag key given twice",
            &["--tag", "team=a", "--tag", "team=b"],
        )
        .says(&["--tag 'team' is given more than once"]),
        Row::bootstrap(
            "bootstrap: --tag keys differing only in case",
            &["--tag", "Team=a", "--tag", "team=b"],
        )
        .says(&["--tag 'Team' and --tag 'team' differ only in case", "IAM"]),
        Row::bootstrap(
            "bootstrap: --tag key of 129 characters (é)",
            &["--tag", &long_key_tag],
        )
        .says(&["the key is 129 characters long; AWS allows 1 to 128"]),
        Row::bootstrap(
            "bootstrap: --tag value of 257 characters (é)",
            &["--tag", &long_value_tag],
        )
        .says(&["the value is 257 characters long; AWS allows at most 256"]),
        Row::bootstrap(
            "bootstrap: --tag value with a zero-width space",
            &["--tag", "team=da\u{200b}ta"],
        )
        .says(&["U+200B (a zero-width space, invisible)"]),
        // --- network
        Row::bootstrap(
            "bootstrap: --vpc-id without --subnet-ids",
            &["--vpc-id", "vpc-0123abcd"],
        )
        .says(&["required arguments were not provided", "--subnet-ids"]),
        Row::bootstrap(
            "bootstrap: --subnet-ids without --vpc-id",
            &["--subnet-ids", "subnet-0123abcd"],
        )
        .says(&["required arguments were not provided", "--vpc-id"]),
        Row::bootstrap(
            "bootstrap: malformed --vpc-id",
            &["--vpc-id", "vpc-xyz", "--subnet-ids", "subnet-0123abcd"],
        )
        .says(&["--vpc-id 'vpc-xyz' is not a VPC id"]),
        Row::bootstrap(
            "bootstrap: malformed subnet id",
            &[
                "--vpc-id",
                "vpc-0123abcd",
                "--subnet-ids",
                "subnet-0123abcd,sn-1",
            ],
        )
        .says(&["--subnet-ids: 'sn-1' is not a subnet id"]),
        Row::bootstrap(
            "bootstrap: subnet listed twice",
            &[
                "--vpc-id",
                "vpc-0123abcd",
                "--subnet-ids",
                "subnet-0123abcd,subnet-0123abcd",
            ],
        )
        .says(&["'subnet-0123abcd' is listed twice"]),
        // --- waiting
        Row::bootstrap(
            "bootstrap: --no-wait with --wait-timeout",
            &["--wait-timeout", "5m"],
        )
        .says(&["--no-wait and --wait-timeout contradict each other"]),
        Row::new(
            "bootstrap: --wait-timeout with an unknown unit",
            &[
                "bootstrap",
                "--pool",
                "ok-pool",
                "--yes",
                "--wait-timeout",
                "5d",
            ],
        )
        .env("PREFECT_API_URL", API_URL)
        .env("PREFECT_API_KEY", API_KEY)
        .says(&["--wait-timeout '5d' is not a duration"]),
        Row::new(
            "bootstrap: --wait-timeout of zero",
            &[
                "bootstrap",
                "--pool",
                "ok-pool",
                "--yes",
                "--wait-timeout",
                "0",
            ],
        )
        .env("PREFECT_API_URL", API_URL)
        .env("PREFECT_API_KEY", API_KEY)
        .says(&["--wait-timeout '0' is not a duration"]),
        // --- AWS target (every command)
        Row::bootstrap(
            "bootstrap: --region that is not a region",
            &["--region", "us-east"],
        )
        .says(&["--region 'us-east' is not an AWS region name"]),
        Row::new(
            "status: --region in capitals",
            &["status", "--pool", "ok-pool", "--region", "US-EAST-1"],
        )
        .says(&["--region 'US-EAST-1' is not an AWS region name"]),
        Row::new(
            "destroy: AWS_REGION that is not a region",
            &["destroy", "--pool", "ok-pool", "--yes"],
        )
        .env("AWS_REGION", "moon-base")
        .says(&["AWS_REGION 'moon-base' is not an AWS region name"]),
        Row::bootstrap(
            "bootstrap: --endpoint-url with ftp://",
            &["--endpoint-url", "ftp://localhost:5000"],
        )
        .says(&["--endpoint-url 'ftp://localhost:5000' is not an http(s) URL"]),
        Row::new(
            "destroy: --endpoint-url that is not a URL",
            &[
                "destroy",
                "--pool",
                "ok-pool",
                "--yes",
                "--endpoint-url",
                "localhost",
            ],
        )
        .says(&["--endpoint-url 'localhost' is not an http(s) URL"]),
        Row::new(
            "status: AWS_ENDPOINT_URL that is not a URL",
            &["status", "--pool", "ok-pool"],
        )
        .env("AWS_ENDPOINT_URL", "localhost:5000")
        .says(&["AWS_ENDPOINT_URL 'localhost:5000' is not an http(s) URL"]),
        Row::new(
            "status: empty --profile",
            &["status", "--pool", "ok-pool", "--profile", ""],
        )
        .says(&["--profile is empty"]),
        Row::new(
            "status: empty --state-dir",
            &["status", "--pool", "ok-pool", "--state-dir", ""],
        )
        .says(&["a value is required for '--state-dir <DIR>'"]),
        Row::new(
            "status: --output that does not exist",
            &["status", "--pool", "ok-pool", "--output", "yaml"],
        )
        .says(&["invalid value 'yaml' for '--output <OUTPUT>'"]),
        // --- destroy
        Row::new(
            "destroy: --secret-recovery-days below 7",
            &[
                "destroy",
                "--pool",
                "ok-pool",
                "--yes",
                "--secret-recovery-days",
                "3",
            ],
        )
        .says(&["--secret-recovery-days 3", "7 to 30 days"]),
        Row::new(
            "destroy: --secret-recovery-days above 30",
            &[
                "destroy",
                "--pool",
                "ok-pool",
                "--yes",
                "--secret-recovery-days",
                "31",
            ],
        )
        .says(&["--secret-recovery-days 31", "7 to 30 days"]),
        Row::new("destroy: no pool, non-interactive", &["destroy", "--yes"])
            .says(&["missing input", "--pool or ECSCTL_POOL"]),
        Row::new(
            "destroy: no pool and no --yes, stdin not a terminal",
            &["destroy"],
        )
        .says(&["missing input", "--pool or ECSCTL_POOL"]),
        Row::new(
            "destroy: bad pool name",
            &["destroy", "--pool", "a b", "--yes"],
        )
        .says(&["pool name 'a b' contains ' '"]),
        // --- status
        Row::new("status: no pool, non-interactive", &["status"])
            .says(&["missing input", "--pool or ECSCTL_POOL"]),
        Row::new("status: empty pool name", &["status", "--pool", ""])
            .says(&["the pool name is empty"]),
        // Optional for status and destroy, but checked when given: never silently swapped
        // for the pool's own secret.
        Row::new(
            "status: a whole export line in PREFECT_API_KEY",
            &["status", "--pool", "ok-pool"],
        )
        .env(
            "PREFECT_API_KEY",
            &format!("export PREFECT_API_KEY={PASTED}"),
        )
        .says(&["whole shell line `export PREFECT_API_KEY=…`"])
        .never_says(&[PASTED]),
        Row::new(
            "destroy: auth string with a zero-width space",
            &["destroy", "--pool", "ok-pool", "--yes"],
        )
        .env(
            "PREFECT_API_AUTH_STRING",
            &format!("admin:\u{200b}{PASSWORD}"),
        )
        .says(&["U+200B (a zero-width space, invisible) at character 7 of 25"])
        .never_says(&[PASSWORD]),
        Row::new(
            "status: --log-lines not a number",
            &["status", "--pool", "ok-pool", "--log-lines", "many"],
        )
        .says(&["invalid value 'many' for '--log-lines <N>'"]),
        // --- command line shape
        Row::new(
            "bootstrap: unknown flag",
            &["bootstrap", "--pool", "ok-pool", "--yes", "--frobnicate"],
        )
        .says(&["unexpected argument '--frobnicate' found"]),
        Row::new("unknown subcommand", &["deploy", "--pool", "ok-pool"])
            .says(&["unrecognized subcommand 'deploy'"]),
        Row::new(
            "bootstrap: --pool given twice",
            &["bootstrap", "--pool", "a", "--pool", "b", "--yes"],
        )
        .says(&["'--pool <NAME>' cannot be used multiple times"]),
        Row::new("no subcommand", &[]).says(&["Usage: ecsctl"]),
        Row::new(
            "bootstrap: missing everything names every input",
            &["bootstrap", "--yes"],
        )
        .says(&[
            "missing input",
            "non-interactive",
            "the pool name (--pool or ECSCTL_POOL)",
            "the Prefect API URL (--prefect-api-url or PREFECT_API_URL)",
            "the Prefect API key (PREFECT_API_KEY, or --prefect-api-key-file PATH|-)",
        ]),
        Row::new(
            "bootstrap: missing everything with CI=true and no --yes",
            &["bootstrap"],
        )
        .env("CI", "true")
        .says(&[
            "non-interactive",
            "--pool or ECSCTL_POOL",
            "--prefect-api-url or PREFECT_API_URL",
            "PREFECT_API_KEY, or --prefect-api-key-file",
        ]),
    ]
}

/// Key files as people save them: with a BOM, as UTF-16, as a whole shell line, far too big.
fn write_pasted_files(dir: &Path) {
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    write("bom-key", format!("\u{feff}{PASTED}\n").as_bytes());
    let utf16: Vec<u8> = [0xfeff_u16]
        .into_iter()
        .chain(PASTED.encode_utf16())
        .flat_map(u16::to_le_bytes)
        .collect();
    write("utf16-key", &utf16);
    write(
        "export-line-key",
        format!("export PREFECT_API_KEY={PASTED}\n").as_bytes(),
    );
    write("huge-key", PASTED.repeat(10_000).as_bytes());
    write(
        "export-line-auth",
        format!("export PREFECT_API_AUTH_STRING=admin:{PASSWORD}\n").as_bytes(),
    );
    std::fs::create_dir(dir.join("a-directory")).unwrap();
}

/// Every file and directory below `dir`, relative, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("read state dir") {
            let path = entry.expect("state dir entry").path();
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

fn describe(row: &Row, out: &Output) -> String {
    let env: Vec<String> = row.env.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!(
        "row \"{}\"\n  args: {:?}\n  env: {}\n  exit: {:?}\n  --- stdout\n{}\n  --- stderr\n{}",
        row.label,
        row.args,
        env.join(" "),
        out.code,
        out.stdout,
        out.stderr
    )
}

#[test]
fn bad_input_exits_2_naming_the_problem_before_any_aws_or_prefect_call() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint());
    let ecsctl = Ecsctl::new(proxy.url());
    let prefect_proxy = Proxy::start(prefect::server().url());
    let prefect_url = format!("{}/api", prefect_proxy.url());
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("empty-key"), "\n").unwrap();
    std::fs::write(
        files.path().join("spaced-key"),
        format!("{KEY_WITH_SPACE}\n"),
    )
    .unwrap();
    write_pasted_files(files.path());

    let rows = rows(files.path(), &prefect_url);
    assert!(rows.len() >= 25, "only {} rows", rows.len());
    let mut failures = Vec::new();
    for row in &rows {
        let mut invocation = ecsctl.cmd(&row.args);
        for (key, value) in &row.env {
            invocation = invocation.env(key, value);
        }
        if let Some(file) = &row.stdin {
            invocation = invocation.stdin_from(file);
        }
        let out = invocation.run();
        let mut problems = Vec::new();
        if out.code != Some(2) {
            problems.push(format!("exit code {:?}, expected 2", out.code));
        }
        for needle in &row.says {
            if !out.stderr.contains(needle) {
                problems.push(format!("stderr lacks {needle:?}"));
            }
        }
        for secret in &row.never_says {
            if out.stderr.contains(secret) || out.stdout.contains(secret) {
                problems.push(format!("output shows {secret:?}"));
            }
        }
        let calls = proxy.calls();
        if !calls.is_empty() {
            let actions: Vec<String> = calls.iter().map(|c| c.action.clone()).collect();
            problems.push(format!(
                "made AWS calls before rejecting the input: {actions:?}"
            ));
            proxy.clear();
        }
        let prefect_calls = prefect_proxy.calls();
        if !prefect_calls.is_empty() {
            let actions: Vec<String> = prefect_calls.iter().map(|c| c.action.clone()).collect();
            problems.push(format!(
                "made Prefect calls before rejecting the input: {actions:?}"
            ));
            prefect_proxy.clear();
        }
        let state = entries(&ecsctl.state_dir());
        if !state.is_empty() {
            problems.push(format!("wrote to the state dir: {state:?}"));
            std::fs::remove_dir_all(ecsctl.state_dir()).unwrap();
            std::fs::create_dir(ecsctl.state_dir()).unwrap();
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}\n  problems: {}",
                describe(row, &out),
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n\n")
    );

    // Control: a valid invocation through the same proxies does reach AWS and Prefect, so the
    // zero counts above mean something.
    // (with a tag value of 256 'é': 512 bytes, but 256 characters as AWS counts them)
    let out = ecsctl
        .cmd(["bootstrap", "--pool", "ok-pool", "--yes", "--dry-run"])
        .args(["--tag", &format!("k={}", "é".repeat(256))])
        .env("PREFECT_API_URL", &prefect_url)
        .env("PREFECT_API_KEY", API_KEY)
        .run();
    out.assert_success();
    assert!(
        prefect_proxy
            .calls()
            .iter()
            .any(|c| c.action == "GET /api/work_pools/ok-pool"),
        "a valid dry run went unrecorded in Prefect: {:?}",
        prefect_proxy.calls()
    );
    assert!(
        prefect_proxy.mutating_calls().is_empty(),
        "{:?}",
        prefect_proxy.mutating_calls()
    );
    assert!(
        proxy
            .calls()
            .iter()
            .any(|c| c.action == "GetCallerIdentity"),
        "a valid dry run went unrecorded: {:?}",
        proxy.calls()
    );
    assert!(
        proxy.mutating_calls().is_empty(),
        "{:?}",
        proxy.mutating_calls()
    );
}

#[test]
fn an_endpoint_that_refuses_connections_fails_fast_naming_the_endpoint() {
    let endpoint = refused_endpoint();
    let address = endpoint.trim_start_matches("http://").to_owned();
    let ecsctl = Ecsctl::new(endpoint);
    let invocations: [&[&str]; 3] = [
        &["bootstrap", "--pool", "ok-pool", "--yes", "--no-wait"],
        &["destroy", "--pool", "ok-pool", "--yes"],
        &["status", "--pool", "ok-pool"],
    ];
    for args in invocations {
        let started = Instant::now();
        let out = ecsctl
            .cmd(args)
            .env("PREFECT_API_URL", API_URL)
            .env("PREFECT_API_KEY", API_KEY)
            .run();
        let took = started.elapsed();
        out.assert_code(1);
        for needle in [
            "credentials",
            "--endpoint-url",
            "Connection refused",
            &address,
        ] {
            assert!(
                out.stderr.contains(needle),
                "{args:?}: stderr lacks {needle:?}:\n{}",
                out.stderr
            );
        }
        assert!(
            took < Duration::from_secs(20),
            "{args:?} took {took:?} to give up on a refused connection"
        );
        let state = entries(&ecsctl.state_dir());
        assert!(state.is_empty(), "{args:?} wrote {state:?}");
    }
}
