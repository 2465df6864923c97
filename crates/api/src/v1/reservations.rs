//! v1 `/reservations`: the scheduler's reservations, and making, changing and deleting them
//! where the scheduler lets the caller (Slurm: its operators and administrators, e.g.
//! `sacctmgr modify user <name> set adminlevel=operator`; anyone else gets 403 with
//! `X-Permission-Denied`). v1 ran a site tool for this; Ironcrest runs `scontrol`.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use ironcrest_scheduler::{ReservationChange, ReservationSpec};
use ironcrest_services::status;
use serde_json::json;

use super::MachineCall;
use super::error::V1Error;
use super::form::{Fields, V1Form, invalid};
use super::tasks::local_time;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reservations", get(list).post(create))
        .route("/reservations/{reservation}", put(update).delete(delete))
}

async fn list(call: MachineCall) -> Result<Response, V1Error> {
    let reservations = status::reservations(&call.cluster, &call.user.caller)
        .await
        .map_err(|e| call.fail(e))?;
    let success: Vec<_> = reservations
        .into_iter()
        .map(|reservation| {
            json!({
                "reservationname": reservation.name,
                "starttime": local_time(reservation.start_time),
                "endtime": local_time(reservation.end_time),
                "nodes": reservation.node_list,
                "features": reservation.features.unwrap_or_default(),
                "state": reservation.state.unwrap_or_default().to_uppercase(),
            })
        })
        .collect();
    Ok(Json(json!({ "success": success })).into_response())
}

/// The reservation a form describes; `name` from the path for an update.
fn spec(call: &MachineCall, form: &Fields, name: String) -> Result<ReservationSpec, V1Error> {
    let text = |field: &str| -> Result<String, V1Error> {
        form.present(field)
            .map_err(|e| call.refuse(e))?
            .map(str::to_string)
            .ok_or_else(|| call.refuse(invalid(field, "is required")))
    };
    let nodes = text("numberOfNodes")?;
    let node_count = nodes.parse().map_err(|_| {
        call.refuse(invalid(
            "numberOfNodes",
            &format!("is not a number: {nodes:?}"),
        ))
    })?;
    let features = form
        .present("nodeType")
        .map_err(|e| call.refuse(e))?
        .map(str::to_string);
    Ok(ReservationSpec {
        name,
        account: text("account")?,
        node_count,
        features,
        start: text("starttime")?,
        end: text("endtime")?,
    })
}

async fn change(call: &MachineCall, change: ReservationChange) -> Result<(), V1Error> {
    status::change_reservation(&call.cluster, &call.user.caller, &change)
        .await
        .map_err(|e| call.fail(e))
}

async fn create(call: MachineCall, V1Form(form): V1Form) -> Result<Response, V1Error> {
    let name = form
        .present("reservation")
        .map_err(|e| call.refuse(e))?
        .ok_or_else(|| call.refuse(invalid("reservation", "is required")))?
        .to_string();
    call.audit("reservation", &name);
    let spec = spec(&call, &form, name.clone())?;
    change(&call, ReservationChange::Create(spec)).await?;
    let success = format!("Reservation created: {name}");
    Ok((StatusCode::CREATED, Json(json!({ "success": success }))).into_response())
}

async fn update(
    call: MachineCall,
    Path(name): Path<String>,
    V1Form(form): V1Form,
) -> Result<Response, V1Error> {
    call.audit("reservation", &name);
    let spec = spec(&call, &form, name.clone())?;
    change(&call, ReservationChange::Update(spec)).await?;
    let success = format!("Reservation {name} updated");
    Ok(Json(json!({ "success": success })).into_response())
}

async fn delete(call: MachineCall, Path(name): Path<String>) -> Result<Response, V1Error> {
    call.audit("reservation", &name);
    change(&call, ReservationChange::Delete { name }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
