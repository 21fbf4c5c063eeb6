//! Deleting the pool's network, backwards and patiently: AWS refuses while Fargate's network
//! interfaces are being released.

use super::*;
/// What destroy deletes, by kind: the ledger's records for this step plus what is tagged for the
/// pool, never what the ledger says was only used (the user's VPC and subnets).
pub(super) fn targets(cx: &Context, tagged: &Tagged) -> BTreeMap<ResourceKind, BTreeSet<String>> {
    let ledger = cx.ledger.snapshot();
    let recorded = ledger.created_by(NAME).map(|r| (r.kind, r.id.as_str()));
    let mut targets: BTreeMap<ResourceKind, BTreeSet<String>> = BTreeMap::new();
    for (kind, id) in recorded.chain(tagged.all()) {
        if !ledger.used.iter().any(|u| u.kind == kind && u.id == id) {
            targets.entry(kind).or_default().insert(id.to_string());
        }
    }
    targets
}

/// Adds the changes to the report; fails with every error at once, so one stuck resource does
/// not hide another.
pub(super) fn tally(
    report: &mut StepReport,
    results: impl IntoIterator<Item = Result<Option<String>>>,
) -> Result<()> {
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(Some(change)) => report.change(change),
            Ok(None) => {}
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(())
}

pub(super) fn is_dependency_violation(e: &anyhow::Error) -> bool {
    is_code(e, &["DependencyViolation"])
}

/// Runs `call` until AWS stops answering DependencyViolation (Fargate's network interfaces being
/// released), saying once that it waits. `call` answers whether it did anything.
pub(super) async fn patiently<Fut>(cx: &Context, what: &str, call: impl Fn() -> Fut) -> Result<bool>
where
    Fut: Future<Output = Result<bool>>,
{
    let noted = AtomicBool::new(false);
    retry_while(cx.teardown().timeout, is_dependency_violation, || async {
        let result = call().await;
        if matches!(&result, Err(e) if is_dependency_violation(e))
            && !noted.swap(true, Ordering::SeqCst)
        {
            cx.progress.note(
                NAME,
                &format!("{what} is still in use; retrying while AWS releases it"),
            );
        }
        result
    })
    .await
}

/// Deletes one resource patiently, then forgets it; the change when it existed.
pub(super) async fn delete<Fut>(
    cx: &Context,
    kind: ResourceKind,
    id: &str,
    call: impl Fn() -> Fut,
) -> Result<Option<String>>
where
    Fut: Future<Output = Result<bool>>,
{
    let what = format!("{} {id}", kind.label());
    let deleted = patiently(cx, &what, call).await?;
    cx.ledger.forget(kind, id)?;
    Ok(deleted.then(|| format!("deleted {what}")))
}

pub(super) async fn disassociate(
    cx: &Context,
    table_id: &str,
    a: &Association,
) -> Result<Option<String>> {
    (cx.aws.ec2.disassociate_route_table())
        .association_id(&a.id)
        .send()
        .await
        .done_unless(
            GONE,
            format!(
                "disassociating subnet {} from route table {table_id}",
                a.subnet_id
            ),
        )?;
    Ok(None)
}

pub(super) async fn delete_group(cx: &Context, id: &str) -> Result<Option<String>> {
    delete(cx, ResourceKind::SecurityGroup, id, move || async move {
        (cx.aws.ec2.delete_security_group())
            .group_id(id)
            .send()
            .await
            .done_unless(GONE, format!("deleting security group {id}"))
    })
    .await
}

pub(super) async fn delete_subnet(cx: &Context, id: &str) -> Result<Option<String>> {
    delete(cx, ResourceKind::Subnet, id, move || async move {
        (cx.aws.ec2.delete_subnet())
            .subnet_id(id)
            .send()
            .await
            .done_unless(GONE, format!("deleting subnet {id}"))
    })
    .await
}

pub(super) async fn delete_route_table(cx: &Context, id: &str) -> Result<Option<String>> {
    delete(cx, ResourceKind::RouteTable, id, move || async move {
        (cx.aws.ec2.delete_route_table())
            .route_table_id(id)
            .send()
            .await
            .done_unless(GONE, format!("deleting route table {id}"))
    })
    .await
}

/// Detaches the gateway from the VPCs look saw it attached to, then deletes it.
pub(super) async fn delete_gateway(
    cx: &Context,
    id: &str,
    vpcs: Vec<String>,
) -> Result<Option<String>> {
    for vpc in &vpcs {
        let what = format!("the VPC {vpc} of internet gateway {id}");
        patiently(cx, &what, move || async move {
            (cx.aws.ec2.detach_internet_gateway())
                .internet_gateway_id(id)
                .vpc_id(vpc)
                .send()
                .await
                .done_unless(
                    GONE,
                    format!("detaching internet gateway {id} from VPC {vpc}"),
                )
        })
        .await?;
    }
    delete(cx, ResourceKind::InternetGateway, id, move || async move {
        (cx.aws.ec2.delete_internet_gateway())
            .internet_gateway_id(id)
            .send()
            .await
            .done_unless(GONE, format!("deleting internet gateway {id}"))
    })
    .await
}

pub(super) async fn delete_vpc(cx: &Context, id: &str) -> Result<Option<String>> {
    delete(cx, ResourceKind::Vpc, id, move || async move {
        (cx.aws.ec2.delete_vpc())
            .vpc_id(id)
            .send()
            .await
            .done_unless(GONE, format!("deleting VPC {id}"))
    })
    .await
}
