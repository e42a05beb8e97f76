//! The exported macros. The list of cases lives here, once, inside
//! `conformance_tests!`.

/// Expands into one `#[test]` per conformance case, each calling
/// `memable_testkit::cases::<family>::<case>(&factory)` with a fresh
/// `factory` built from the given expression.
///
/// Generated tests run on a multi-thread tokio runtime with two workers that
/// the testkit builds itself, so the calling crate needs only
/// `memable-testkit` as a dev-dependency.
///
/// # Examples
///
/// ```
/// // tests/conformance.rs of a backend crate:
/// memable_testkit::conformance_tests!(memable_testkit::MemoryFactory);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::__conformance_emit! { ($factory)
            // The one list of conformance cases, by family: a case added
            // here reaches every backend.
            engine: [
                engine_full_lifecycle,
                engine_memoisation_across_resume,
                engine_retry_and_dead_letter,
                engine_suspend_signal_complete,
                engine_signal_race_has_one_winner,
                engine_timer_fires_at_deadline,
                engine_cancel_drops_timer_and_rejects_signals,
                engine_typed_input_and_output,
                engine_recovery_after_reopen,
            ],
            start: [
                start_writes_running_metadata_and_input,
                start_existing_is_reported_never_overwrites,
                start_existing_finished_instance_is_reported,
                start_existing_cancelled_instance_is_reported,
                start_same_id_in_two_workflows_is_two_instances,
                missing_instance_reads_are_empty,
            ],
            steps: [
                commit_completed_reads_back,
                every_record_field_round_trips,
                commit_overwrites_retrying,
                commit_overwrites_dead_letter,
                commit_over_completed_is_kept,
                commit_over_suspended_is_kept,
                commit_to_missing_instance_is_reported,
                commit_does_not_touch_metadata,
                commit_accepted_in_every_status,
            ],
            snapshot: [
                snapshot_has_every_step_sorted,
                snapshot_excludes_other_instances,
                get_step_unknown_key_is_none,
            ],
            isolation: [
                workflow_prefixes_do_not_bleed,
                instance_prefixes_do_not_bleed,
                separator_lookalikes_do_not_collide,
                step_key_prefixes_do_not_bleed,
                unicode_keys_round_trip,
                long_keys_do_not_bleed,
                max_length_keys_round_trip,
            ],
            suspend: [
                suspend_writes_step_timer_and_status,
                suspend_without_deadline_writes_no_timer,
                suspend_is_idempotent,
                resuspend_with_new_deadline_replaces_timer,
                suspend_completed_step_is_reported,
                suspend_inactive_instance_is_reported,
                suspend_while_suspended_moves_the_status,
            ],
            claim: [
                claim_completes_step_and_runs_instance,
                claim_missing_step_is_rejected,
                claim_step_not_suspended_is_superseded,
                claim_twice_second_is_superseded,
                claim_instance_not_suspended_is_superseded,
                claim_exactly_one_winner_of_32,
                claim_races_cancel_consistently,
            ],
            timers: [
                timers_ordered_by_deadline,
                equal_deadlines_all_listed,
                next_deadline_follows_changes,
                due_set_exact_at_boundary,
                due_timers_respects_limit,
                extreme_deadlines_order_numerically,
                cancel_removes_only_its_timers,
                claim_removes_timer_atomically,
            ],
            lifecycle: [
                finish_completed_writes_output_and_status,
                finish_failed_writes_message_without_output,
                finish_not_running_is_reported,
                revive_completed_runs_again_keeping_output,
                revive_failed_runs_again,
                revive_active_instance_writes_nothing,
                revive_cancelled_or_missing_is_refused,
                cancel_active_instance,
                cancel_terminal_instance_is_refused,
            ],
            listing: [
                list_all_ordered_by_workflow_then_instance,
                list_by_workflow_is_exact,
                list_by_each_status,
                status_index_follows_transitions,
                list_pages_with_after_and_limit,
                list_by_workflow_and_status,
            ],
            age: [
                list_by_creation_time_is_half_open,
                list_by_end_time_skips_instances_not_ended,
                age_filtered_pages_are_full,
                delete_ended_checks_the_end_in_its_transaction,
            ],
            delete: [
                delete_removes_every_row,
                delete_missing_returns_false,
                delete_in_every_status_empties_the_store,
            ],
            ownership: [
                acquire_bumps_the_epoch_every_time,
                acquire_refuses_missing_and_cancelled,
                acquire_keeps_any_status,
                stale_epoch_writes_land_nothing,
                fenced_write_without_acquisition_is_stale,
                park_and_finish_release_the_instance,
                woken_park_keeps_the_instance,
                only_run_writes_can_be_fenced,
                concurrent_acquisitions_get_distinct_epochs,
                epochs_survive_reopen,
                release_ends_the_runs_ownership,
            ],
            signals: [
                wait_registers_point_and_keeps_status,
                wait_at_completed_point_is_resolved,
                wait_on_inactive_instance_writes_nothing,
                signal_before_wait_is_buffered_once,
                wait_consumes_buffered_signal,
                buffered_signal_of_other_type_stays_buffered,
                signal_to_waiting_point_is_delivered,
                signal_of_wrong_type_is_refused,
                signal_to_non_point_is_refused,
                signal_after_delivery_or_finish,
                wait_with_members_writes_group_and_members,
                group_first_member_signal_wins,
                group_wait_consumes_buffered_member_signal,
                group_exactly_one_winner_of_32,
                buffered_exactly_one_of_32,
                park_suspends_at_first_point,
                park_with_resolved_point_is_woken,
                park_inactive_instance_is_refused,
                fire_due_timer_completes_point,
                fire_stale_row_only_removes_it,
                buffered_signals_follow_delete_and_cancel,
                buffered_signal_does_not_resolve_a_timer,
                member_signal_after_buffered_win_is_superseded,
            ],
            values: [
                empty_values_round_trip,
                binary_values_round_trip,
                sixteen_mib_value_round_trips,
            ],
            concurrency: [
                concurrent_writers_lose_nothing,
                concurrent_commits_first_writer_wins,
                concurrent_starts_one_wins,
            ],
            persistence: [
                reopen_keeps_everything,
                reopen_then_writes_continue,
                reopen_empty_store_stays_empty,
            ],
            atomicity: [
                refused_transitions_write_nothing,
                refused_lifecycle_transitions_write_nothing,
                failed_write_leaves_store_unchanged,
                ack_lost_write_is_durable,
            ],
            model: [
                model_random_sequences,
            ],
            children: [
                start_child_writes_link_point_and_child,
                start_child_twice_writes_nothing,
                start_child_refusals_write_nothing,
                child_finish_completes_the_parents_point,
                child_end_leaves_ended_or_detaching_parent_alone,
                cancel_cascades_to_awaited_children,
                cancelled_child_completes_the_parents_point,
                start_child_adopts_an_ended_instance,
                child_finish_races_parent_cancel,
                engine_child_output_and_failure_reach_the_parent,
                engine_cancel_cascades_to_children,
                engine_fan_out_is_bounded_and_ordered,
                engine_children_recover_after_reopen,
            ],
            queues: [
                enqueue_writes_a_queued_instance,
                enqueue_refusals_write_nothing_and_dedup_frees_at_the_end,
                admit_follows_priority_and_the_limit,
                admit_holds_a_partition_to_its_limit,
                admit_keeps_the_rate_window,
                admit_by_a_worker_acquires_its_workflows_only,
                ends_leave_the_queue_and_revive_runs_outside,
                concurrent_admissions_never_exceed_the_limit,
                concurrent_dedup_has_one_winner,
                engine_queue_limit_holds,
                engine_partition_runs_one_per_key,
                engine_rate_limit_follows_the_clock,
                engine_dedup_refuses_while_active,
                engine_listens_to_its_queues_only,
            ],
            repair: [
                forget_removes_named_records_and_their_timers,
                forget_refusals_write_nothing,
                forget_child_point_removes_its_link,
                fork_copies_records_except_bookkeeping,
                fork_refusals_write_nothing,
                engine_forget_and_fork_rerun_only_those_steps,
                engine_fork_runs_on_the_next_start,
                resume_gives_dead_letters_a_fresh_budget,
                engine_runs_a_resumed_dead_letter_on_the_next_start,
            ],
        }
    };
}

/// Emits the tests for `conformance_tests!` (internal).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_emit {
    (($factory:expr) $($family:ident : [$($case:ident),* $(,)?]),* $(,)?) => {
        $($(
            #[test]
            fn $case() {
                let factory = $factory;
                $crate::__private::block_on(async move {
                    $crate::cases::$family::$case(&factory).await;
                });
            }
        )*)*
    };
}

/// Expands into the crash tests of a file backend ([`crash`](crate::crash)):
/// the child test `crash_child` and one `#[test]` per scenario, each on a
/// fresh database named `$file` opened by `$open`, a
/// `Fn(&Path, bool) -> Result<Arc<dyn StepStore>, EngineError>` whose
/// `bool` is `accept_lost_journal`.
///
/// # Examples
///
/// ```ignore
/// // tests/lost_work.rs of a backend crate:
/// fn open(path: &Path, accept: bool) -> Result<Arc<dyn StepStore>, EngineError> {
///     Ok(Arc::new(RedbStore::builder().accept_lost_journal(accept).open(path)?))
/// }
/// memable_testkit::crash_tests!("wf.redb", open);
/// ```
#[macro_export]
macro_rules! crash_tests {
    ($file:expr, $open:expr $(,)?) => {
        #[test]
        fn crash_child() {
            if let Some(path) = $crate::crash::child_path() {
                let store = ($open)(&path, false).expect("the crash child opens its store");
                $crate::crash::write_until_killed(store);
            }
        }

        #[test]
        fn a_damaged_middle_record_of_the_journal_is_corrupt() {
            $crate::crash::damaged_middle_record_is_corrupt("crash_child", $file, &$open);
        }

        #[test]
        fn a_torn_last_record_opens_with_everything_before_it() {
            $crate::__private::block_on($crate::crash::torn_last_record_opens_with_the_rest(
                "crash_child",
                $file,
                &$open,
            ));
        }

        #[test]
        fn a_missing_journal_after_a_crash_is_incomplete() {
            $crate::__private::block_on($crate::crash::lost_journal_is_incomplete(
                "crash_child",
                $file,
                $crate::crash::LostJournal::Missing,
                &$open,
            ));
        }

        #[test]
        fn an_emptied_journal_after_a_crash_is_incomplete() {
            $crate::__private::block_on($crate::crash::lost_journal_is_incomplete(
                "crash_child",
                $file,
                $crate::crash::LostJournal::Emptied,
                &$open,
            ));
        }

        #[test]
        fn a_journal_cut_in_its_header_after_a_crash_is_incomplete() {
            $crate::__private::block_on($crate::crash::lost_journal_is_incomplete(
                "crash_child",
                $file,
                $crate::crash::LostJournal::HeaderCut,
                &$open,
            ));
        }

        #[test]
        fn a_cleanly_closed_store_opens_without_its_journal() {
            $crate::__private::block_on($crate::crash::clean_close_opens_without_its_journal(
                $file, &$open,
            ));
        }
    };
}
