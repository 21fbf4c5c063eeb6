//! Bootstrap inputs → settings: every input checked, every problem collected.
//!
//! `validate` checks the inputs group by group, in a fixed order, so the problems are always listed
//! in the same order: the required inputs (with what is missing first), the image, the task size,
//! the worker count and log retention, tags and network, and the wait.

use std::time::Duration;

use super::{
    cpu_sizes_for, err, fargate_memory_options, is_prefect_cloud, parse_duration, parse_tags,
    validate_api_key, validate_api_url, validate_auth_string, validate_desired_count,
    validate_flow_run_capacity, validate_image, validate_log_retention, validate_network,
    validate_policy_arn, validate_pool_name, validate_role_arn, validate_task_size, ApiKey,
    BootstrapInputs, BootstrapSettings, Credentials, FlowRunSpec, InputError, InputErrors,
    NetworkChoice, StackSpec, DEFAULT_CPU, DEFAULT_DESIRED_COUNT, DEFAULT_IMAGE,
    DEFAULT_LOG_RETENTION_DAYS, DEFAULT_MEMORY, DEFAULT_WAIT_TIMEOUT,
};

/// The inputs a bootstrap cannot do without: there is no default for them. The API key is
/// required for Prefect Cloud only; a self-hosted server may need none, or an auth string.
struct Required {
    pool: String,
    prefect_api_url: String,
    api_key: Option<ApiKey>,
    auth_string: Option<ApiKey>,
}

impl BootstrapInputs {
    /// Checks what flags and environment gave, before any question is asked: a typo in a flag is
    /// reported at once, not after the user has answered every question. What the questions
    /// will ask for stands in as a valid placeholder.
    pub fn validate_given(&self) -> Result<(), InputErrors> {
        let mut probe = self.clone();
        probe.pool.get_or_insert_with(|| "placeholder".into());
        probe
            .prefect_api_url
            .get_or_insert_with(|| "http://placeholder/api".into());
        if probe.auth_string.is_none() {
            probe.api_key.get_or_insert_with(|| "placeholder".into());
        }
        probe.validate().map(|_| ())
    }

    /// Validates every input and returns settings, or every problem found.
    pub fn validate(self) -> Result<BootstrapSettings, InputErrors> {
        let mut errors = Vec::new();
        let required = self.check_required(&mut errors);
        let image = self.check_image(&mut errors);
        let size = self.check_task_size(&mut errors);
        let scale = self.check_count_and_retention(&mut errors);
        let placement = self.check_tags_and_network(&mut errors);
        let flow_run = self.check_flow_run(&mut errors);
        let wait_timeout = self.check_wait(&mut errors);
        match (
            required,
            image,
            size,
            scale,
            placement,
            flow_run,
            wait_timeout,
        ) {
            (
                Some(required),
                Some(image),
                Some((cpu, memory)),
                Some((desired_count, log_retention_days)),
                Some((tags, network)),
                Some(flow_run),
                Some(wait_timeout),
            ) if errors.is_empty() => Ok(BootstrapSettings {
                pool: required.pool,
                spec: StackSpec {
                    prefect_api_url: required.prefect_api_url,
                    credentials: Credentials {
                        api_key: required.api_key.is_some(),
                        auth_string: required.auth_string.is_some(),
                    },
                    flow_run,
                    image,
                    cpu,
                    memory,
                    desired_count,
                    log_retention_days,
                    tags,
                    network,
                },
                api_key: required.api_key,
                auth_string: required.auth_string,
                dry_run: self.dry_run,
                wait_timeout,
            }),
            _ => Err(InputErrors(errors)),
        }
    }

    /// The pool, API URL and API key. Their problems come first, led by one line naming every
    /// missing input.
    fn check_required(&self, errors: &mut Vec<InputError>) -> Option<Required> {
        let mut missing = Vec::new();
        let pool = required(
            self.pool.as_deref(),
            "the pool name (--pool or ECSCTL_POOL)",
            validate_pool_name,
            &mut missing,
            errors,
        );
        let prefect_api_url = required(
            self.prefect_api_url.as_deref(),
            "the Prefect API URL (--prefect-api-url or PREFECT_API_URL)",
            validate_api_url,
            &mut missing,
            errors,
        );
        // Only a URL known not to be Prefect Cloud's makes the key optional.
        let cloud = prefect_api_url.as_deref().is_none_or(is_prefect_cloud);
        let api_key = match (self.api_key.as_deref(), cloud) {
            (None, false) => Some(None),
            (key, _) => required(
                key,
                "the Prefect API key (PREFECT_API_KEY, or --prefect-api-key-file PATH|-)",
                validate_api_key,
                &mut missing,
                errors,
            )
            .map(Some),
        };
        let auth_string = match self.auth_string.as_deref() {
            None => Some(None),
            Some(auth) => keep(validate_auth_string(auth), errors).map(Some),
        };
        if !missing.is_empty() {
            errors.insert(
                0,
                err(format!(
                    "missing input, and not prompting because the run is non-interactive: {}",
                    missing.join("; ")
                )),
            );
        }
        Some(Required {
            pool: pool?,
            prefect_api_url: prefect_api_url?,
            api_key: api_key?,
            auth_string: auth_string?,
        })
    }

    fn check_image(&self, errors: &mut Vec<InputError>) -> Option<String> {
        keep(
            validate_image(self.image.as_deref().unwrap_or(DEFAULT_IMAGE)),
            errors,
        )
    }

    /// CPU and memory, each defaulted to fit the other when only one is given.
    fn check_task_size(&self, errors: &mut Vec<InputError>) -> Option<(u32, u32)> {
        let cpu = self.cpu.unwrap_or_else(|| {
            // A memory size with no CPU given keeps the default CPU if that allows it, else gets
            // the smallest CPU size that does (the same choice the CPU question offers).
            let sizes = cpu_sizes_for(self.memory);
            match sizes.first() {
                Some(&smallest) if !sizes.contains(&DEFAULT_CPU) => smallest,
                _ => DEFAULT_CPU,
            }
        });
        let memory = self.memory.unwrap_or(match self.cpu {
            // A bigger CPU with no memory given gets that size's smallest memory.
            Some(c) => fargate_memory_options(c)
                .first()
                .copied()
                .unwrap_or(DEFAULT_MEMORY),
            None => DEFAULT_MEMORY,
        });
        keep(validate_task_size(cpu, memory), errors).map(|()| (cpu, memory))
    }

    fn check_count_and_retention(&self, errors: &mut Vec<InputError>) -> Option<(u32, u32)> {
        let desired_count = keep(
            validate_desired_count(self.desired_count.unwrap_or(DEFAULT_DESIRED_COUNT)),
            errors,
        );
        let log_retention_days = keep(
            validate_log_retention(
                self.log_retention_days
                    .unwrap_or(DEFAULT_LOG_RETENTION_DAYS),
            ),
            errors,
        );
        desired_count.zip(log_retention_days)
    }

    fn check_tags_and_network(
        &self,
        errors: &mut Vec<InputError>,
    ) -> Option<(Vec<(String, String)>, NetworkChoice)> {
        let tags = keep(parse_tags(&self.tags), errors);
        let network = keep(
            validate_network(self.vpc_id.as_deref(), &self.subnet_ids),
            errors,
        );
        tags.zip(network)
    }

    /// The flow runs' capacity and role: ecsctl's role with policies, or the user's own role.
    fn check_flow_run(&self, errors: &mut Vec<InputError>) -> Option<FlowRunSpec> {
        let capacity = match self.flow_run_capacity.as_deref() {
            None => Some(Default::default()),
            Some(raw) => keep(validate_flow_run_capacity(raw), errors),
        };
        let policy_arns: Option<Vec<String>> = self
            .flow_run_policy_arns
            .iter()
            .map(|arn| keep(validate_policy_arn(arn), errors))
            .collect::<Vec<_>>()
            .into_iter()
            .collect();
        let role_arn = match self.flow_run_role_arn.as_deref() {
            None => Some(None),
            Some(raw) => keep(validate_role_arn(raw), errors).map(Some),
        };
        if self.flow_run_role_arn.is_some() && !self.flow_run_policy_arns.is_empty() {
            errors.push(err(
                "--flow-run-policy-arn attaches policies to the flow-run role ecsctl creates, and --flow-run-role-arn says to use your own role instead: attach the policies to your role, or drop --flow-run-role-arn",
            ));
            return None;
        }
        Some(FlowRunSpec {
            capacity: capacity?,
            policy_arns: policy_arns?,
            role_arn: role_arn?,
        })
    }

    /// How long to wait for the worker: `Some(None)` with `--no-wait`.
    fn check_wait(&self, errors: &mut Vec<InputError>) -> Option<Option<Duration>> {
        match (self.no_wait, self.wait_timeout.as_deref()) {
            (true, Some(_)) => {
                errors.push(err(
                    "--no-wait and --wait-timeout contradict each other: drop one of them",
                ));
                None
            }
            (true, None) => Some(None),
            (false, None) => Some(Some(DEFAULT_WAIT_TIMEOUT)),
            (false, Some(t)) => keep(parse_duration(t), errors).map(Some),
        }
    }
}

/// A required input: validated when given, else named in `missing`.
fn required<T>(
    given: Option<&str>,
    what: &'static str,
    validate: fn(&str) -> Result<T, InputError>,
    missing: &mut Vec<&'static str>,
    errors: &mut Vec<InputError>,
) -> Option<T> {
    match given {
        None => {
            missing.push(what);
            None
        }
        Some(value) => keep(validate(value), errors),
    }
}

fn keep<T>(result: Result<T, InputError>, errors: &mut Vec<InputError>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FARGATE_CPU_SIZES;

    fn complete() -> BootstrapInputs {
        BootstrapInputs {
            pool: Some("my-ecs-pool".into()),
            prefect_api_url: Some("http://prefect.internal:4200/api".into()),
            api_key: Some("pnu_abc123".into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_everything_optional() {
        let s = complete().validate().unwrap();
        assert_eq!(s.pool, "my-ecs-pool");
        assert_eq!(s.spec.image, DEFAULT_IMAGE);
        assert_eq!((s.spec.cpu, s.spec.memory), (512, 1024));
        assert_eq!(s.spec.desired_count, 1);
        assert_eq!(s.spec.log_retention_days, 30);
        assert_eq!(s.spec.network, NetworkChoice::Create);
        assert_eq!(s.wait_timeout, Some(DEFAULT_WAIT_TIMEOUT));
    }

    #[test]
    fn missing_inputs_are_all_named_with_their_flags() {
        let e = BootstrapInputs::default().validate().unwrap_err();
        let text = e.to_string();
        for needle in [
            "--pool",
            "ECSCTL_POOL",
            "PREFECT_API_URL",
            "PREFECT_API_KEY",
            "--prefect-api-key-file",
        ] {
            assert!(text.contains(needle), "{needle} not in {text}");
        }
    }

    #[test]
    fn all_problems_are_reported_together() {
        let inputs = BootstrapInputs {
            cpu: Some(300),
            log_retention_days: Some(2),
            tags: vec!["novalue".into()],
            ..complete()
        };
        let e = inputs.validate().unwrap_err();
        assert_eq!(e.0.len(), 3, "{e}");
    }

    #[test]
    fn given_inputs_are_checked_before_questions_fill_the_rest() {
        assert!(BootstrapInputs::default().validate_given().is_ok());
        let memory_only = BootstrapInputs {
            memory: Some(8192),
            ..Default::default()
        };
        assert!(memory_only.validate_given().is_ok());
        assert_eq!(cpu_sizes_for(Some(8192)), vec![1024, 2048, 4096]);
        assert_eq!(cpu_sizes_for(None), FARGATE_CPU_SIZES);
        for bad in [
            BootstrapInputs {
                tags: vec!["novalue".into()],
                ..Default::default()
            },
            BootstrapInputs {
                memory: Some(3000),
                ..Default::default()
            },
            BootstrapInputs {
                cpu: Some(300),
                ..Default::default()
            },
            BootstrapInputs {
                pool: Some("a b".into()),
                ..Default::default()
            },
            BootstrapInputs {
                no_wait: true,
                wait_timeout: Some("5m".into()),
                ..Default::default()
            },
        ] {
            let e = bad.clone().validate_given().unwrap_err();
            assert_eq!(e.0.len(), 1, "{bad:?}: {e}");
            assert!(!e.to_string().contains("missing"), "{e}");
        }
    }

    #[test]
    fn memory_without_cpu_keeps_the_default_cpu_or_takes_the_smallest_allowing_it() {
        let cpu_for = |memory| {
            BootstrapInputs {
                memory: Some(memory),
                ..complete()
            }
            .validate()
            .unwrap()
            .spec
            .cpu
        };
        assert_eq!(cpu_for(2048), 512);
        assert_eq!(cpu_for(8192), 1024);
        assert_eq!(cpu_for(512), 256);
        assert!(BootstrapInputs {
            memory: Some(3000),
            ..complete()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn cpu_without_memory_takes_the_smallest_valid_memory() {
        let s = BootstrapInputs {
            cpu: Some(2048),
            ..complete()
        }
        .validate()
        .unwrap();
        assert_eq!(s.spec.memory, 4096);
    }

    #[test]
    fn no_wait_conflicts_with_wait_timeout() {
        let inputs = BootstrapInputs {
            no_wait: true,
            wait_timeout: Some("5m".into()),
            ..complete()
        };
        assert!(inputs
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--no-wait"));
    }

    #[test]
    fn problems_are_listed_in_input_order() {
        let inputs = BootstrapInputs {
            pool: None,
            prefect_api_url: Some("ftp://x/api".into()),
            api_key: None,
            image: Some("bad image".into()),
            cpu: Some(300),
            desired_count: Some(101),
            log_retention_days: Some(2),
            tags: vec!["novalue".into()],
            vpc_id: Some("vpc-xyz".into()),
            subnet_ids: vec!["subnet-0123abcd".into()],
            no_wait: true,
            wait_timeout: Some("5m".into()),
            ..Default::default()
        };
        let e = inputs.validate().unwrap_err();
        let starts = [
            "missing input, and not prompting because the run is non-interactive: the pool name (--pool or ECSCTL_POOL); the Prefect API key",
            "the Prefect API URL 'ftp://x/api'",
            "the image 'bad image'",
            "--cpu 300",
            "--desired-count 101",
            "--log-retention-days 2",
            "--tag 'novalue'",
            "--vpc-id 'vpc-xyz'",
            "--no-wait and --wait-timeout",
        ];
        assert_eq!(e.0.len(), starts.len(), "{e}");
        for (problem, start) in e.0.iter().zip(starts) {
            assert!(
                problem.0.starts_with(start),
                "{problem} does not start with {start}"
            );
        }
    }
}
