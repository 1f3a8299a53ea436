//! Signed webhook delivery (B7.2): a POST of the event to the subscription
//! URL, retried on the configured schedule until a 2xx answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::header;
use donkies_dwolla::wire::{SIGNATURE_HEADER, TOPIC_HEADER};
use donkies_dwolla::{ExposeSecret, sign_webhook};

use super::SimState;
use super::store::Delivery;

pub(crate) fn dispatch(state: &Arc<SimState>, deliveries: Vec<Delivery>) {
    for delivery in deliveries {
        let state = state.clone();
        tokio::spawn(async move { deliver(&state, delivery).await });
    }
}

async fn deliver(state: &SimState, delivery: Delivery) {
    let signature = sign_webhook(delivery.subscription.secret.expose_secret(), &delivery.body);
    let mut waits = state.webhook_retries.iter();
    loop {
        // A subscription deleted or paused meanwhile gets no more attempts.
        if !state.db().is_subscription_active(&delivery.subscription.id) {
            return;
        }
        state.webhook_attempts.fetch_add(1, Ordering::Relaxed);
        let sent = state
            .webhook_http
            .post(&delivery.subscription.url)
            .header(header::CONTENT_TYPE, "application/json; charset=UTF-8")
            .header(header::USER_AGENT, "dwolla-webhooks/1.0")
            .header(TOPIC_HEADER, &delivery.topic)
            .header(SIGNATURE_HEADER, &signature)
            .timeout(state.webhook_timeout)
            .body(delivery.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => {
                tracing::debug!(status = response.status().as_u16(), topic = delivery.topic, "webhook refused")
            }
            Err(error) => tracing::debug!(%error, topic = delivery.topic, "webhook not delivered"),
        }
        let Some(wait) = waits.next() else {
            tracing::info!(topic = delivery.topic, url = delivery.subscription.url, "webhook given up");
            return;
        };
        tokio::time::sleep(*wait).await;
    }
}
