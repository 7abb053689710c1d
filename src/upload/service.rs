//! The issue service: checks that need configuration (40002, 40003, 40301), allocates the
//! objectId, asks the provider, records the result, and builds the answer.

use std::time::Duration;

use tokio::time::Instant;

use crate::app::App;
use crate::auth::AuthUser;
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::providers::{CallbackPlan, IssueRequest};
use crate::store::{Finished, NewObject};
use crate::upload::answer::{CallbackInfo, StsAnswer};
use crate::upload::idempotency::Remembered;
use crate::upload::layout;
use crate::upload::params::StsParams;

/// The `tracing` target of audit events: one per issued credential, one per accepted
/// callback (filter or route them with `STSGATE_LOG`, e.g. `info,stsgate::audit=info`).
pub const AUDIT_TARGET: &str = "stsgate::audit";

/// How often a duplicate waits before looking again for the answer of a first request
/// still running on another replica (with Redis).
const IDEM_POLL: Duration = Duration::from_millis(50);

/// The part of the request deadline kept back for our own work after the upstream call.
pub fn upstream_deadline(start: Instant, request_timeout: Duration) -> Instant {
    let margin =
        (request_timeout / 10).clamp(Duration::from_millis(20), Duration::from_millis(500));
    start + request_timeout.saturating_sub(margin)
}

/// The 40002 / 40003 / 40301 checks, in that order.
pub fn authorize(app: &App, user: &AuthUser, p: &StsParams) -> Result<(), ApiError> {
    if app.providers.get(p.cloud).is_none() {
        return Err(ApiError::CloudNotEnabled(p.type_code));
    }
    if !app.config.upload.rules(p.module).allows(&p.extension) {
        return Err(ApiError::ExtensionNotAllowed {
            extension: p.extension.clone(),
            module: p.module.as_str().into(),
        });
    }
    if let (Some(pid), Some(projects)) = (p.project_id, &user.projects) {
        if !projects.contains(&pid) {
            return Err(ApiError::Forbidden(format!(
                "projectId {pid} is not in the token's projects"
            )));
        }
    }
    Ok(())
}

/// Issues credentials for validated, authorised parameters, honouring `Idempotency-Key`.
/// `request_id` goes into the audit event of a fresh issuance.
pub async fn issue(
    app: &App,
    user: &AuthUser,
    p: &StsParams,
    idem_key: Option<&str>,
    deadline: Instant,
    request_id: &str,
) -> Result<StsAnswer, ApiError> {
    let run = || issue_once(app, user, p, deadline, request_id);
    match idem_key {
        None => run().await,
        // Boxed: the idempotent path (store, Redis, polling) is most of this future's size,
        // which every request would otherwise carry and move.
        Some(key) => Box::pin(idempotent(app, user, key, p.hash(), deadline, run)).await,
    }
}

/// Runs `run` at most once per (user, `key`, `hash`): a retry with the same key and hash gets
/// the first answer again (fresh `serverTime`) while it has `min_remaining_secs` left; the same
/// key with another hash is 40901, an answer no longer available 40902.
async fn idempotent<F, Fut>(
    app: &App,
    user: &AuthUser,
    key: &str,
    hash: String,
    deadline: Instant,
    run: F,
) -> Result<StsAnswer, ApiError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<StsAnswer, ApiError>>,
{
    let min_remaining = app.config.upload.min_remaining_secs as i64;
    let request_secs = app.config.server.request_timeout_ms.div_ceil(1000) as i64;
    let store = &app.store;
    let remembered = app
        .idem
        .get_or_run(&user.sub, key, async {
            loop {
                let now = app.clock.now_unix();
                match store.idem_get(&user.sub, key).await? {
                    Some(rec) if rec.params_hash != hash => {
                        return Err(ApiError::IdempotencyMismatch)
                    }
                    Some(rec) => {
                        // Issued (or being issued) elsewhere: another replica's answer, via
                        // Redis, or 40902.
                        if let Some(r) = app.idem.fetch_shared(&user.sub, key).await {
                            return Ok(r);
                        }
                        // The first request is still running on another replica (its claim
                        // is younger than a request can live): wait for its answer. Without
                        // Redis there is nothing to wait for.
                        let running = rec.object_id.is_none()
                            && now <= rec.claimed_at + request_secs + 1;
                        if !app.idem.is_shared()
                            || !running
                            || Instant::now() + IDEM_POLL >= deadline
                        {
                            return Err(ApiError::IdempotencyGone);
                        }
                        tokio::time::sleep(IDEM_POLL).await;
                    }
                    None => {
                        if !store.idem_claim(&user.sub, key, &hash, now).await? {
                            // Another replica claimed it between our read and our insert.
                            continue;
                        }
                        return match run().await {
                            Ok(answer) => {
                                let r = Remembered {
                                    params_hash: hash.clone(),
                                    replay_until: answer.expiration - min_remaining,
                                    answer,
                                };
                                // Redis first: a replica that sees the objectId in the
                                // ledger finds the answer there (if Redis took it).
                                app.idem
                                    .store_shared(&user.sub, key, &r, app.clock.now_unix())
                                    .await;
                                store
                                    .idem_attach(&user.sub, key, r.answer.object_id)
                                    .await?;
                                Ok(r)
                            }
                            Err(e) => {
                                // Nothing was handed out: free the key so the client may
                                // retry.
                                if let Err(db) = store.idem_release(&user.sub, key).await {
                                    tracing::warn!(error = %db, "could not release idempotency key");
                                }
                                Err(e)
                            }
                        };
                    }
                }
            }
        })
        .await?;
    if remembered.params_hash != hash {
        return Err(ApiError::IdempotencyMismatch);
    }
    let now = app.clock.now_unix();
    if remembered.replay_until <= now {
        app.idem.forget(&user.sub, key).await;
        return Err(ApiError::IdempotencyGone);
    }
    let mut answer = remembered.answer.clone();
    answer.server_time = now;
    Ok(answer)
}

async fn issue_once(
    app: &App,
    user: &AuthUser,
    p: &StsParams,
    deadline: Instant,
    request_id: &str,
) -> Result<StsAnswer, ApiError> {
    let provider = app
        .providers
        .get(p.cloud)
        .ok_or(ApiError::CloudNotEnabled(p.type_code))?;
    let now = app.clock.now();
    let row = NewObject {
        owner: user.sub.clone(),
        cloud_type: i64::from(p.cloud.code()),
        module: p.module.as_str().into(),
        platform: p.platform.as_str().into(),
        project_id: p.project_id,
        extension: p.extension.clone(),
        is_dir: p.is_dir,
        created_at: now.unix_timestamp(),
    };
    // A cloud called upstream gets its row before the call (a crash leaves a trace) and
    // completed after; a cloud that signs locally gets its complete row in one write, with
    // an objectId reserved first (the key contains it).
    let upstream = provider.calls_upstream();
    let object_id = if upstream {
        app.store.insert_object(&row).await?
    } else {
        app.store.next_object_id().await?
    };
    // Records a failure: on the row written before the call, or as the one write.
    let fail = |reason: String| async {
        if upstream {
            app.store.fail_object(object_id, &reason).await
        } else {
            app.store
                .insert_finished(object_id, &row, &Finished::Failed { reason })
                .await
        }
    };
    let cfg = &app.config;
    let planned_key = layout::relative_path(
        &cfg.upload.key_prefix,
        &layout::module_dir(p.module, p.project_id, p.uuid.as_deref()),
        now.date(),
        object_id,
        uuid::Uuid::new_v4(),
        &p.extension,
        p.is_dir,
    );
    let callback_url = format!(
        "{}/upload/callback",
        cfg.server.public_base_url.trim_end_matches('/')
    );
    let resource_type = p.module.resource_type();
    let req = IssueRequest {
        sub: user.sub.clone(),
        object_id,
        planned_key,
        extension: p.extension.clone(),
        module: p.module,
        is_dir: p.is_dir,
        max_bytes: cfg.upload.rules(p.module).max_bytes,
        callback: p.need_callback.then(|| CallbackPlan {
            url: callback_url.clone(),
            object_id,
            resource_type,
        }),
        deadline,
        now: now.unix_timestamp(),
    };
    let issued = match provider.issue(&req).await {
        Ok(i) => i,
        Err(e) => {
            let err = ApiError::from(e.clone());
            tracing::warn!(object_id, provider = p.cloud.name(), error = %e, "issuance failed");
            fail(e.to_string()).await?;
            return Err(err);
        }
    };
    let now_unix = app.clock.now_unix();
    let min_remaining = cfg.upload.min_remaining_secs as i64;
    if issued.expiration - now_unix < min_remaining {
        fail("credentials expire too soon".into()).await?;
        return Err(ApiError::CloudRefused {
            code: format!(
                "credentials expire in {}s, less than min_remaining_secs ({min_remaining}s)",
                issued.expiration - now_unix
            ),
        });
    }
    if upstream {
        app.store
            .complete_object(
                object_id,
                &issued.bucket,
                &issued.relative_path,
                issued.expiration,
            )
            .await?;
    } else {
        let end = Finished::Issued {
            bucket: issued.bucket.clone(),
            key: issued.relative_path.clone(),
            expires_at: issued.expiration,
        };
        app.store.insert_finished(object_id, &row, &end).await?;
    }
    app.metrics.issued(p.cloud.name());
    // The audit record: who got credentials for which object, where, until when. Never the
    // credentials themselves.
    tracing::info!(
        target: AUDIT_TARGET,
        event = "credentials_issued",
        request_id,
        sub = %user.sub,
        object_id,
        cloud_type = p.cloud.code(),
        cloud = p.cloud.name(),
        upload_module = p.module.as_str(),
        bucket = %issued.bucket,
        key = %issued.relative_path,
        expiration = %rfc3339(issued.expiration),
        "issued upload credentials"
    );
    Ok(answer(
        issued,
        object_id,
        p.need_callback.then_some((callback_url, resource_type)),
        now_unix,
    ))
}

/// The answer for `issued`, with `callbackInfo` when `callback` names its URL and resourceType.
fn answer(
    issued: crate::providers::Issued,
    object_id: i64,
    callback: Option<(String, u8)>,
    now_unix: i64,
) -> StsAnswer {
    let callback_info = callback.map(|(callback_url, resource_type)| {
        let over = issued.callback.clone().unwrap_or_default();
        CallbackInfo {
            callback_body_type: "application/x-www-form-urlencoded".into(),
            callback_url,
            object_id,
            resource_type,
            callback_body: over
                .body
                .unwrap_or_else(|| format!("objectId={object_id}&resourceType={resource_type}")),
            callback: over.callback,
            callback_var: over.callback_var,
        }
    });
    StsAnswer {
        access_key_id: issued.access_key_id,
        secret_access_key: issued.secret_access_key,
        security_token: issued.security_token,
        bucket: issued.bucket,
        endpoint: issued.endpoint,
        region: issued.region,
        relative_path: issued.relative_path,
        expiration: issued.expiration,
        start_time: issued.start_time,
        server_time: now_unix,
        object_id,
        callback_info,
        form: issued.form,
        upload: issued.upload,
    }
}

/// `POST /upload/sts/refresh`: fresh credentials for the same key while the row is `issued`
/// (docs/contract.md §9), honouring `Idempotency-Key`.
#[allow(clippy::too_many_arguments)]
pub async fn refresh(
    app: &App,
    user: &AuthUser,
    object_id: i64,
    need_callback: bool,
    idem_key: Option<&str>,
    deadline: Instant,
    request_id: &str,
) -> Result<StsAnswer, ApiError> {
    let run = || refresh_once(app, user, object_id, need_callback, deadline, request_id);
    match idem_key {
        None => run().await,
        Some(key) => {
            let canonical = format!("refresh|{object_id}|{}", u8::from(need_callback));
            let hash = crate::providers::crypto::hex(crate::providers::crypto::sha256(
                canonical.as_bytes(),
            ));
            Box::pin(idempotent(app, user, key, hash, deadline, run)).await
        }
    }
}

async fn refresh_once(
    app: &App,
    user: &AuthUser,
    object_id: i64,
    need_callback: bool,
    deadline: Instant,
    request_id: &str,
) -> Result<StsAnswer, ApiError> {
    use crate::providers::CloudType;
    use crate::upload::module::UploadModule;

    let row = app
        .store
        .get_object(object_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("object {object_id}")))?;
    crate::upload::callback::check_owner(&row, &user.sub)?;
    let wrong = |status: String| ApiError::WrongState {
        id: object_id,
        status,
        action: "refresh",
        needs: "issued",
    };
    if row.status != "issued" {
        return Err(wrong(row.status));
    }
    let (Some(cloud), Some(module), Some(key)) = (
        u8::try_from(row.cloud_type)
            .ok()
            .and_then(|c| CloudType::from_code(i64::from(c))),
        UploadModule::parse(&row.upload_module),
        row.object_key.clone(),
    ) else {
        return Err(wrong("issued without credentials".into()));
    };
    if cloud == CloudType::Tencent {
        return Err(ApiError::SingleUse(object_id));
    }
    let provider = app
        .providers
        .get(cloud)
        .ok_or(ApiError::CloudNotEnabled(i64::from(cloud.code())))?;
    let cfg = &app.config;
    let callback_url = format!(
        "{}/upload/callback",
        cfg.server.public_base_url.trim_end_matches('/')
    );
    let resource_type = module.resource_type();
    let now = app.clock.now_unix();
    let req = IssueRequest {
        sub: user.sub.clone(),
        object_id,
        planned_key: key.clone(),
        extension: row.extension.clone(),
        module,
        is_dir: row.is_dir,
        max_bytes: cfg.upload.rules(module).max_bytes,
        callback: need_callback.then(|| CallbackPlan {
            url: callback_url.clone(),
            object_id,
            resource_type,
        }),
        deadline,
        now,
    };
    let issued = provider.issue(&req).await.map_err(|e| {
        tracing::warn!(object_id, provider = cloud.name(), error = %e, "refresh failed");
        ApiError::from(e)
    })?;
    if issued.relative_path != key {
        return Err(ApiError::CloudRefused {
            code: "the cloud answered for another key".into(),
        });
    }
    let now_unix = app.clock.now_unix();
    let min_remaining = cfg.upload.min_remaining_secs as i64;
    if issued.expiration - now_unix < min_remaining {
        return Err(ApiError::CloudRefused {
            code: format!(
                "credentials expire in {}s, less than min_remaining_secs ({min_remaining}s)",
                issued.expiration - now_unix
            ),
        });
    }
    app.store
        .extend_expiry(object_id, issued.expiration)
        .await?;
    app.metrics.issued(cloud.name());
    tracing::info!(
        target: AUDIT_TARGET,
        event = "credentials_refreshed",
        request_id,
        sub = %user.sub,
        object_id,
        cloud_type = cloud.code(),
        cloud = cloud.name(),
        key = %issued.relative_path,
        expiration = %rfc3339(issued.expiration),
        "refreshed upload credentials"
    );
    Ok(answer(
        issued,
        object_id,
        need_callback.then_some((callback_url, resource_type)),
        now_unix,
    ))
}
