"""Retraining on drift: what the retraining DAG runs, one module per task.

Nothing here knows Airflow; only :mod:`retraining.sensor` sees a Kafka message, and
it opens no client. The flow for one drift event, task by task:

1. ``wait_for_drift_event`` filters the drift topic in the sensor's trigger with
   :func:`retraining.sensor.actionable_drift_event`: only drift, for this model,
   judged against the current champion, not yet handled.
2. ``decide`` (:func:`retraining.decision.decide`) re-checks at run time (the champion
   or the ledger may have changed while the sensor waited) and adds the cooldown and
   the labeled-row minimum. A ``retrain`` decision claims the event in the
   :class:`retraining.ledger.HandledLedger` for the run.
3. ``train_challenger`` (:func:`retraining.challenger.train_challenger`) trains on the
   archived windows around and after the drift (:mod:`retraining.windows`), scores
   challenger and champion on the same held-out recent rows, registers the challenger
   with its lineage and promotes it when it wins by more than the margin.
4. ``mark_handled`` (:func:`retraining.outcome.record_outcome`) records the run's
   outcome once it is durable (the model update published, or the rejection or skip
   recorded).

Thresholds come from :class:`retraining.settings.RetrainSettings`; a task's event,
whatever form it arrives in, is read by :func:`retraining.events.parse_event`.
"""
