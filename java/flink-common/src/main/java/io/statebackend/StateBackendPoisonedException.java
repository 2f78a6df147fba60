package io.statebackend;

/**
 * The native backend is unusable: a panic (a bug in the native library) left it, or its write-back
 * thread, in an unknown state. Every later call on it throws this too; the backend must be closed.
 * Flink then fails the task and restores it from the last completed checkpoint, as for any other
 * task failure. The C ABI reports the same condition as {@code SB_POISONED}.
 */
public class StateBackendPoisonedException extends StateBackendException {
    private static final long serialVersionUID = 1L;

    public StateBackendPoisonedException(String message) {
        super(message);
    }
}
