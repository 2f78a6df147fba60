package io.statebackend;

/**
 * A failure reported by the native state backend (I/O, corruption, RocksDB, a declined checkpoint).
 * The message is the native library's.
 */
public class StateBackendException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public StateBackendException(String message) {
        super(message);
    }

    public StateBackendException(String message, Throwable cause) {
        super(message, cause);
    }
}
