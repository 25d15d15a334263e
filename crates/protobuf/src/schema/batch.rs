//! batch/v1 Job and CronJob, written by hand in the generated files' form from
//! batch/v1/types.go (Kubernetes v0.32): one row per Go struct field, in struct order. The
//! Job's podFailurePolicy and successPolicy are left out (kubectl's generators never send
//! them; a protobuf body carrying them is refused as an unknown field).

use super::*;

pub static BATCH_CRON_JOB: Message = Message {
    name: "CronJob",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "spec", Ty::Msg(&BATCH_CRON_JOB_SPEC), One, Omit),
        f(3, "status", Ty::Msg(&BATCH_CRON_JOB_STATUS), One, Omit),
    ],
};

pub static BATCH_CRON_JOB_SPEC: Message = Message {
    name: "CronJobSpec",
    fields: &[
        f(1, "schedule", Ty::Str, One, Always),
        f(8, "timeZone", Ty::Str, One, Ptr),
        f(2, "startingDeadlineSeconds", Ty::I64, One, Ptr),
        f(3, "concurrencyPolicy", Ty::Str, One, Omit),
        f(4, "suspend", Ty::Bool, One, Ptr),
        f(5, "jobTemplate", Ty::Msg(&BATCH_JOB_TEMPLATE_SPEC), One, Always),
        f(6, "successfulJobsHistoryLimit", Ty::I32, One, Ptr),
        f(7, "failedJobsHistoryLimit", Ty::I32, One, Ptr),
    ],
};

pub static BATCH_CRON_JOB_STATUS: Message = Message {
    name: "CronJobStatus",
    fields: &[
        f(1, "active", Ty::Msg(&CORE_OBJECT_REFERENCE), List, Omit),
        f(4, "lastScheduleTime", Ty::Time, One, Ptr),
        f(5, "lastSuccessfulTime", Ty::Time, One, Ptr),
    ],
};

pub static BATCH_JOB: Message = Message {
    name: "Job",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "spec", Ty::Msg(&BATCH_JOB_SPEC), One, Omit),
        f(3, "status", Ty::Msg(&BATCH_JOB_STATUS), One, Omit),
    ],
};

pub static BATCH_JOB_CONDITION: Message = Message {
    name: "JobCondition",
    fields: &[
        f(1, "type", Ty::Str, One, Always),
        f(2, "status", Ty::Str, One, Always),
        f(3, "lastProbeTime", Ty::Time, One, Omit),
        f(4, "lastTransitionTime", Ty::Time, One, Omit),
        f(5, "reason", Ty::Str, One, Omit),
        f(6, "message", Ty::Str, One, Omit),
    ],
};

pub static BATCH_JOB_SPEC: Message = Message {
    name: "JobSpec",
    fields: &[
        f(1, "parallelism", Ty::I32, One, Ptr),
        f(2, "completions", Ty::I32, One, Ptr),
        f(3, "activeDeadlineSeconds", Ty::I64, One, Ptr),
        f(7, "backoffLimit", Ty::I32, One, Ptr),
        f(12, "backoffLimitPerIndex", Ty::I32, One, Ptr),
        f(13, "maxFailedIndexes", Ty::I32, One, Ptr),
        f(4, "selector", Ty::Msg(&META_LABEL_SELECTOR), One, Ptr),
        f(5, "manualSelector", Ty::Bool, One, Ptr),
        f(6, "template", Ty::Msg(&CORE_POD_TEMPLATE_SPEC), One, Always),
        f(8, "ttlSecondsAfterFinished", Ty::I32, One, Ptr),
        f(9, "completionMode", Ty::Str, One, Ptr),
        f(10, "suspend", Ty::Bool, One, Ptr),
        f(14, "podReplacementPolicy", Ty::Str, One, Ptr),
        f(15, "managedBy", Ty::Str, One, Ptr),
    ],
};

pub static BATCH_JOB_STATUS: Message = Message {
    name: "JobStatus",
    fields: &[
        f(1, "conditions", Ty::Msg(&BATCH_JOB_CONDITION), List, Omit),
        f(2, "startTime", Ty::Time, One, Ptr),
        f(3, "completionTime", Ty::Time, One, Ptr),
        f(4, "active", Ty::I32, One, Omit),
        f(5, "succeeded", Ty::I32, One, Omit),
        f(6, "failed", Ty::I32, One, Omit),
        f(11, "terminating", Ty::I32, One, Ptr),
        f(7, "completedIndexes", Ty::Str, One, Omit),
        f(10, "failedIndexes", Ty::Str, One, Ptr),
        f(8, "uncountedTerminatedPods", Ty::Msg(&BATCH_UNCOUNTED_TERMINATED_PODS), One, Ptr),
        f(9, "ready", Ty::I32, One, Ptr),
    ],
};

pub static BATCH_JOB_TEMPLATE_SPEC: Message = Message {
    name: "JobTemplateSpec",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "spec", Ty::Msg(&BATCH_JOB_SPEC), One, Omit),
    ],
};

pub static BATCH_UNCOUNTED_TERMINATED_PODS: Message = Message {
    name: "UncountedTerminatedPods",
    fields: &[
        f(1, "succeeded", Ty::Str, List, Omit),
        f(2, "failed", Ty::Str, List, Omit),
    ],
};
