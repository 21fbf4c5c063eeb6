//! Interactive questions (dialoguer) for inputs not given as flags. Every answer goes through the
//! same validators as flags, so a prompt never accepts what `--flag` would reject.

use std::io::ErrorKind;

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Password, Select};

use crate::config::{self, BootstrapInputs};
use crate::error::CliError;

fn theme() -> ColorfulTheme {
    ColorfulTheme::default()
}

/// A prompt's answer. Ctrl-C at a prompt (an interrupted read, once a SIGINT handler is in
/// place) ends the run like Ctrl-C anywhere else: exit 130, not a failure.
fn answer<T>(result: dialoguer::Result<T>) -> Result<T, CliError> {
    result.map_err(|e| match e {
        dialoguer::Error::IO(io) if io.kind() == ErrorKind::Interrupted => CliError::Interrupted,
        other => CliError::Failed(
            anyhow::Error::new(other).context("reading an answer from the terminal"),
        ),
    })
}

/// Runs a validator and turns its error into the text dialoguer shows under the prompt.
fn check<T>(result: Result<T, config::InputError>) -> Result<(), String> {
    result.map(|_| ()).map_err(|e| e.0)
}

fn ask_text(
    prompt: &str,
    default: Option<&str>,
    validate: impl Fn(&str) -> Result<(), String>,
) -> Result<String, CliError> {
    let theme = theme();
    let mut input = Input::<String>::with_theme(&theme).with_prompt(prompt);
    if let Some(d) = default {
        input = input.default(d.to_string());
    }
    answer(
        input
            .validate_with(|s: &String| validate(s))
            .interact_text(),
    )
}

fn choose(prompt: &str, items: &[String], default: usize) -> Result<usize, CliError> {
    answer(
        Select::with_theme(&theme())
            .with_prompt(prompt)
            .items(items)
            .default(default)
            .interact(),
    )
}

/// Asks for every bootstrap input not already given, offering the defaults.
pub fn fill_bootstrap(inputs: &mut BootstrapInputs) -> Result<(), CliError> {
    ask_pool_and_api(inputs)?;
    ask_image(inputs)?;
    ask_cpu(inputs)?;
    ask_memory(inputs)?;
    ask_count_and_retention(inputs)?;
    ask_network(inputs)
}

/// The pool name, the Prefect API URL and the (hidden) credentials it needs: Prefect Cloud's API
/// key, or a self-hosted server's optional API key and auth string.
fn ask_pool_and_api(inputs: &mut BootstrapInputs) -> Result<(), CliError> {
    if inputs.pool.is_none() {
        inputs.pool = Some(ask_text(
            "Prefect work pool name",
            Some("my-ecs-pool"),
            |s| check(config::validate_pool_name(s)),
        )?);
    }
    if inputs.prefect_api_url.is_none() {
        inputs.prefect_api_url = Some(ask_text(
            "Prefect API URL (https://api.prefect.cloud/api/accounts/…/workspaces/…)",
            None,
            |s| check(config::validate_api_url(s)),
        )?);
    }
    let cloud = inputs
        .prefect_api_url
        .as_deref()
        .is_some_and(config::is_prefect_cloud);
    if cloud {
        if inputs.api_key.is_none() {
            inputs.api_key = Some(answer(
                Password::with_theme(&theme())
                    .with_prompt("Prefect API key (hidden)")
                    .validate_with(|s: &String| check(config::validate_api_key(s)))
                    .interact(),
            )?);
        }
        return Ok(());
    }
    if inputs.api_key.is_none() {
        inputs.api_key = ask_optional_secret(
            "Prefect API key, if your server wants one (hidden; empty for none)",
            config::validate_api_key,
        )?;
    }
    if inputs.auth_string.is_none() {
        inputs.auth_string = ask_optional_secret(
            "Prefect API auth string user:password, if your server wants one (hidden; empty for none)",
            config::validate_auth_string,
        )?;
    }
    Ok(())
}

/// A hidden answer that may be empty (`None`); anything else must pass `validate`.
fn ask_optional_secret<T>(
    prompt: &str,
    validate: fn(&str) -> Result<T, config::InputError>,
) -> Result<Option<String>, CliError> {
    let given = answer(
        Password::with_theme(&theme())
            .with_prompt(prompt)
            .allow_empty_password(true)
            .validate_with(|s: &String| {
                if s.is_empty() {
                    Ok(())
                } else {
                    check(validate(s))
                }
            })
            .interact(),
    )?;
    Ok((!given.is_empty()).then_some(given))
}

fn ask_image(inputs: &mut BootstrapInputs) -> Result<(), CliError> {
    if inputs.image.is_none() {
        inputs.image = Some(ask_text(
            "Worker image",
            Some(config::DEFAULT_IMAGE),
            |s| check(config::validate_image(s)),
        )?);
    }
    Ok(())
}

fn ask_cpu(inputs: &mut BootstrapInputs) -> Result<(), CliError> {
    if inputs.cpu.is_none() {
        // With --memory given, only the sizes that allow it (validate_given made sure there are some).
        let mut sizes = config::cpu_sizes_for(inputs.memory);
        if sizes.is_empty() {
            sizes = config::FARGATE_CPU_SIZES.to_vec();
        }
        let labels: Vec<String> = sizes
            .iter()
            .map(|c| format!("{c} CPU units ({} vCPU)", *c as f64 / 1024.0))
            .collect();
        let default = sizes
            .iter()
            .position(|c| *c == config::DEFAULT_CPU)
            .unwrap_or(0);
        inputs.cpu = Some(sizes[choose("Task CPU", &labels, default)?]);
    }
    Ok(())
}

/// Only the memory sizes the chosen CPU allows.
fn ask_memory(inputs: &mut BootstrapInputs) -> Result<(), CliError> {
    if inputs.memory.is_none() {
        let cpu = inputs.cpu.unwrap_or(config::DEFAULT_CPU);
        let options = config::fargate_memory_options(cpu);
        if !options.is_empty() {
            let labels: Vec<String> = options.iter().map(|m| format!("{m} MiB")).collect();
            let default = options
                .iter()
                .position(|m| *m == config::DEFAULT_MEMORY)
                .unwrap_or(0);
            inputs.memory = Some(options[choose("Task memory", &labels, default)?]);
        }
    }
    Ok(())
}

/// How many workers, and how long CloudWatch keeps their logs.
fn ask_count_and_retention(inputs: &mut BootstrapInputs) -> Result<(), CliError> {
    if inputs.desired_count.is_none() {
        let count = ask_text(
            "Number of workers",
            Some(&config::DEFAULT_DESIRED_COUNT.to_string()),
            |s| match s.trim().parse::<u32>() {
                Ok(n) => check(config::validate_desired_count(n)),
                Err(_) => Err("enter a whole number, e.g. 1".into()),
            },
        )?;
        inputs.desired_count = count.trim().parse().ok();
    }
    if inputs.log_retention_days.is_none() {
        let labels: Vec<String> = config::LOG_RETENTION_DAYS
            .iter()
            .map(|d| format!("{d} days"))
            .collect();
        let default = config::LOG_RETENTION_DAYS
            .iter()
            .position(|d| *d == config::DEFAULT_LOG_RETENTION_DAYS)
            .unwrap_or(0);
        inputs.log_retention_days =
            Some(config::LOG_RETENTION_DAYS[choose("Keep worker logs for", &labels, default)?]);
    }
    Ok(())
}

/// A new VPC, or the user's VPC and subnets.
fn ask_network(inputs: &mut BootstrapInputs) -> Result<(), CliError> {
    if inputs.vpc_id.is_none() {
        let network = [
            "Create a new VPC with two public subnets".to_string(),
            "Use an existing VPC and subnets".to_string(),
        ];
        if choose("Network", &network, 0)? == 1 {
            inputs.vpc_id = Some(ask_text("VPC id", None, |s| {
                check(config::validate_network(
                    Some(s),
                    &["subnet-00000000".into()],
                ))
            })?);
            let subnets = ask_text("Subnet ids (comma-separated)", None, |s| {
                let ids: Vec<String> = s.split(',').map(|x| x.trim().to_string()).collect();
                check(config::validate_network(Some("vpc-00000000"), &ids))
            })?;
            inputs.subnet_ids = subnets.split(',').map(|s| s.trim().to_string()).collect();
        }
    }
    Ok(())
}

/// Asks for a pool name (destroy and status on a terminal).
pub fn ask_pool() -> Result<String, CliError> {
    ask_text("Prefect work pool name", None, |s| {
        check(config::validate_pool_name(s))
    })
}

/// Yes/no, defaulting to no: nothing is changed without a clear yes.
pub fn confirm(question: &str) -> Result<bool, CliError> {
    answer(
        Confirm::with_theme(&theme())
            .with_prompt(question)
            .default(false)
            .interact(),
    )
}
