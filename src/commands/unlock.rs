//! `ecsctl unlock`: breaks a pool's lock in the account, left behind by a run that was killed
//! (SIGKILL, a CI job cancelled hard, a machine gone). Says whose lock it broke.

use serde_json::json;

use super::{require_pool, Common};
use crate::account::AccountState;
use crate::aws;
use crate::cli::UnlockArgs;
use crate::error::CliError;

pub async fn run(args: UnlockArgs, common: Common) -> Result<(), CliError> {
    let pool = require_pool(args.pool, true)?;
    let aws = aws::connect(&common.target).await?;
    let region = aws.region.clone();
    let broken = AccountState::new(&aws, &pool).break_lock().await?;
    let text = match &broken {
        None => format!("pool '{pool}' is not locked in {region}; nothing to do\n"),
        Some(holder) => format!(
            "broke pool '{pool}''s lock in {region}, held by {}. If that run is in fact still going, nothing keeps another run from interleaving with it now; run `ecsctl bootstrap` or `ecsctl destroy` again once it has stopped\n",
            holder.describe()
        ),
    };
    common.print(
        &text,
        &json!({ "pool": pool, "region": region, "broken": broken }),
    );
    Ok(())
}
