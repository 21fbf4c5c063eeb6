//! The answers AWS gives only in words. Everywhere else a decision matches an error code; these
//! cases have no code of their own (ECS folds them into `ClientException` /
//! `InvalidParameterException`, or they are not errors at all but service events and stopped-task
//! reasons), so they are recognised by their text here, side by side, each with a unit test.

use super::error::aws_error;

/// CreateCluster in an account's first cluster races the creation of ECS's service-linked role.
pub fn service_linked_role_not_ready(e: &anyhow::Error) -> bool {
    aws_message(e).is_some_and(|m| m.contains("Unable to assume the service linked role"))
}

/// DescribeTaskDefinition or DeregisterTaskDefinition of a family or revision that does not exist
/// (a `ClientException` like any other bad request).
pub fn task_definition_unknown(e: &anyhow::Error) -> bool {
    aws_error(e).is_some_and(|a| {
        a.has_code(&["ClientException"])
            && a.message.as_deref().is_some_and(|m| {
                m.to_lowercase()
                    .contains("unable to describe task definition")
            })
    })
}

/// RegisterTaskDefinition naming a role IAM has not yet propagated to ECS (a `ClientException`
/// like any other bad request).
pub fn role_not_valid_yet(e: &anyhow::Error) -> bool {
    aws_error(e).is_some_and(|a| {
        a.has_code(&["ClientException"])
            && a.message
                .as_deref()
                .is_some_and(|m| m.contains("Role is not valid"))
    })
}

/// CreateSecret of a name whose force-deleted secret AWS is still purging (an
/// `InvalidRequestException` like any other refused request).
pub fn secret_name_being_purged(e: &anyhow::Error) -> bool {
    aws_error(e).is_some_and(|a| {
        a.has_code(&["InvalidRequestException"])
            && a.message
                .as_deref()
                .is_some_and(|m| m.contains("scheduled for deletion"))
    })
}

fn aws_message(e: &anyhow::Error) -> Option<&str> {
    aws_error(e).and_then(|a| a.message.as_deref())
}

/// The service event ECS writes when every wanted task runs; older events are history.
pub fn is_steady_state_event(message: &str) -> bool {
    message.contains("has reached a steady state")
}

/// The stopped reason of a task whose essential container exited (with or without a stop code).
pub fn is_essential_container_exit(stopped_reason: &str) -> bool {
    stopped_reason.starts_with("Essential container in task exited")
}

/// A task stopped because IAM has not yet propagated a role or policy made seconds ago: ECS
/// cannot assume the task's role, or the execution role is denied the secret it may read.
pub fn is_iam_not_yet_usable(text: &str) -> bool {
    match ecs_problem(text) {
        Some(EcsProblem::RoleNotAssumable) => true,
        Some(EcsProblem::SecretUnreadable { timed_out: false }) => {
            text.to_lowercase().contains("accessdenied")
        }
        _ => false,
    }
}

/// A problem ECS describes in a service event or a stopped task's reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcsProblem {
    /// ECS cannot assume a task's role.
    RoleNotAssumable,
    /// The task could not read a secret; `timed_out` when the words say the connection timed out.
    SecretUnreadable { timed_out: bool },
    /// The image could not be pulled.
    ImagePull { timed_out: bool },
    /// The awslogs driver could not write to the log group.
    LogGroupUnusable,
    /// The task could not reach AWS or the internet.
    NetworkUnreachable,
    /// No Fargate capacity.
    NoCapacity,
    /// A container was killed for using too much memory.
    OutOfMemory,
    /// A container failed its health check.
    Unhealthy,
    /// ECS gave up starting tasks for a while.
    KeepsFailing,
    /// The task could not be prepared for another reason.
    FailedToStart,
}

/// Recognises the problems ECS reports in events and stop reasons, most specific first.
pub fn ecs_problem(text: &str) -> Option<EcsProblem> {
    let t = text.to_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
    let timed_out = has(&[
        "i/o timeout",
        "connection issue between the task",
        "dial tcp",
    ]);
    let problem = if has(&["unable to assume the role", "unable to assume role"]) {
        EcsProblem::RoleNotAssumable
    } else if has(&[
        "unable to pull secrets",
        "unable to retrieve secret",
        "failed to fetch secret",
    ]) {
        EcsProblem::SecretUnreadable { timed_out }
    } else if has(&[
        "cannotpullcontainererror",
        "pull image manifest",
        "failed to resolve ref",
    ]) {
        EcsProblem::ImagePull { timed_out }
    } else if has(&[
        "failed to validate logger args",
        "failed to create cloudwatch log stream",
    ]) {
        EcsProblem::LogGroupUnusable
    } else if timed_out {
        EcsProblem::NetworkUnreachable
    } else if has(&[
        "capacity is unavailable",
        "insufficient capacity",
        "unable to place a task",
        "no container instance met",
    ]) {
        EcsProblem::NoCapacity
    } else if has(&["outofmemory", "out of memory", "killed due to memory usage"]) {
        EcsProblem::OutOfMemory
    } else if has(&["failed container health checks", "health check"]) {
        EcsProblem::Unhealthy
    } else if has(&["unable to consistently start tasks"]) {
        EcsProblem::KeepsFailing
    } else if has(&[
        "resourceinitializationerror",
        "cannotstartcontainererror",
        "cannotcreatecontainererror",
    ]) {
        EcsProblem::FailedToStart
    } else {
        return None;
    };
    Some(problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::error::AwsError;

    fn answered(code: &str, message: &str) -> anyhow::Error {
        let e: aws_sdk_sts::error::SdkError<
            aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError,
            (),
        > = aws_sdk_sts::error::SdkError::service_error(
            aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError::generic(
                aws_sdk_sts::error::ErrorMetadata::builder()
                    .code(code)
                    .message(message)
                    .build(),
            ),
            (),
        );
        anyhow::Error::new(AwsError::new("creating", &e)).context("step cluster")
    }

    #[test]
    fn the_first_cluster_races_the_service_linked_role() {
        let race = answered(
            "InvalidParameterException",
            "Unable to assume the service linked role. Please verify that the ECS service linked role exists.",
        );
        assert!(service_linked_role_not_ready(&race));
        assert!(!service_linked_role_not_ready(&answered(
            "InvalidParameterException",
            "Cluster name is invalid"
        )));
        // Only AWS's answer counts, not our own words around it.
        assert!(!service_linked_role_not_ready(&anyhow::anyhow!(
            "Unable to assume the service linked role"
        )));
    }

    #[test]
    fn an_unknown_task_definition_is_a_client_exception_saying_so() {
        assert!(task_definition_unknown(&answered(
            "ClientException",
            "Unable to describe task definition."
        )));
        assert!(!task_definition_unknown(&answered(
            "ClientException",
            "Too many concurrent attempts to create a new revision of the specified family."
        )));
        assert!(!task_definition_unknown(&answered(
            "InvalidParameterException",
            "Unable to describe task definition."
        )));
    }

    #[test]
    fn a_role_seconds_old_is_not_yet_valid_for_a_task_definition() {
        assert!(role_not_valid_yet(&answered(
            "ClientException",
            "Role is not valid"
        )));
        assert!(!role_not_valid_yet(&answered(
            "ClientException",
            "Too many concurrent attempts to create a new revision of the specified family."
        )));
        assert!(!role_not_valid_yet(&answered(
            "InvalidParameterException",
            "Role is not valid"
        )));
    }

    #[test]
    fn a_secret_name_is_taken_while_its_deleted_secret_is_purged() {
        assert!(secret_name_being_purged(&answered(
            "InvalidRequestException",
            "You can't create this secret because a secret with this name is already scheduled for deletion."
        )));
        assert!(!secret_name_being_purged(&answered(
            "InvalidRequestException",
            "You can't perform this operation on the secret because it was marked for deletion."
        )));
        assert!(!secret_name_being_purged(&answered(
            "ResourceExistsException",
            "The operation failed because the secret already exists."
        )));
    }

    #[test]
    fn steady_state_and_essential_exit_are_recognised() {
        assert!(is_steady_state_event(
            "(service ecsctl-p-worker) has reached a steady state."
        ));
        assert!(!is_steady_state_event(
            "(service ecsctl-p-worker) has started 1 tasks"
        ));
        assert!(is_essential_container_exit(
            "Essential container in task exited"
        ));
        assert!(!is_essential_container_exit("Scaling activity initiated"));
    }

    #[test]
    fn a_role_or_policy_not_yet_propagated_is_recognised() {
        assert!(is_iam_not_yet_usable(
            "ECS was unable to assume the role 'arn:aws:iam::1:role/ecsctl/ecsctl-p-execution' that was provided for this task."
        ));
        assert!(is_iam_not_yet_usable(
            "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): AccessDeniedException: User: arn:aws:sts::1:assumed-role/ecsctl-p-execution/x is not authorized"
        ));
        // A missing secret or an unreachable endpoint is not IAM's delay.
        assert!(!is_iam_not_yet_usable(
            "ResourceInitializationError: unable to pull secrets or registry auth: ResourceNotFoundException: Secrets Manager can't find the specified secret."
        ));
        assert!(!is_iam_not_yet_usable(
            "ResourceInitializationError: unable to pull secrets or registry auth: dial tcp 1.2.3.4:443: i/o timeout"
        ));
        assert!(!is_iam_not_yet_usable("Essential container in task exited"));
    }

    #[test]
    fn each_ecs_problem_is_recognised_in_ecs_words() {
        use EcsProblem::*;
        let cases = [
            ("ECS was unable to assume the role 'arn:aws:iam::1:role/r'", Some(RoleNotAssumable)),
            ("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: AccessDeniedException", Some(SecretUnreadable { timed_out: false })),
            ("ResourceInitializationError: unable to pull secrets or registry auth: dial tcp 1.2.3.4:443: i/o timeout", Some(SecretUnreadable { timed_out: true })),
            ("CannotPullContainerError: pull image manifest has been retried 5 time(s)", Some(ImagePull { timed_out: false })),
            ("ResourceInitializationError: failed to validate logger args: The specified log group does not exist.", Some(LogGroupUnusable)),
            ("ResourceInitializationError: dial tcp 10.0.0.1:443: i/o timeout", Some(NetworkUnreachable)),
            ("(service x) was unable to place a task. Reason: Capacity is unavailable at this time.", Some(NoCapacity)),
            ("OutOfMemoryError: Container killed due to memory usage", Some(OutOfMemory)),
            ("Task failed container health checks", Some(Unhealthy)),
            ("(service x) is unable to consistently start tasks successfully.", Some(KeepsFailing)),
            ("CannotStartContainerError: Error response from daemon", Some(FailedToStart)),
            ("Scaling activity initiated by deployment ecs-svc/1", None),
        ];
        for (text, want) in cases {
            assert_eq!(ecs_problem(text), want, "{text}");
        }
    }
}
