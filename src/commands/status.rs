//! `ecsctl status`: is the pool's worker healthy, and if not, why.

use serde_json::json;

use super::{print_result, render_plan, require_pool, step_failures, CliError, Common, Session};
use crate::cli::StatusArgs;
use crate::engine;
use crate::steps;

pub async fn run(args: StatusArgs, common: Common) -> Result<(), CliError> {
    let pool = require_pool(args.pool.pool, false)?;
    let session = Session::open(&common, &pool, None, false).await?;
    let spec = session.ledger.as_ref().and_then(|l| l.spec.clone());
    let cx = session.context(&pool, spec, None, false, common.progress.clone());
    let plans = engine::look_all(&steps::all(), &cx)
        .await
        .map_err(|f| step_failures("reading the pool's resources", &f))?;
    let text = render_plan(&plans);
    print_result(
        common.output,
        &text,
        &json!({ "pool": pool, "resources": plans }),
    );
    Ok(())
}
