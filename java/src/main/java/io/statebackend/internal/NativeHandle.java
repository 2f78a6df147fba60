package io.statebackend.internal;

/**
 * The id of a native backend. The native handle table makes a closed id fail with {@link
 * IllegalStateException}; closing here is idempotent.
 */
final class NativeHandle implements AutoCloseable {
    private final long id;
    private volatile boolean closed;

    NativeHandle(long id) {
        this.id = id;
    }

    long id() {
        return id;
    }

    boolean isClosed() {
        return closed;
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            NativeBridge.close(id);
        }
    }
}
