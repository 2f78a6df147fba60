package io.statebackend.internal;

/**
 * The id of a native backend. The native handle table makes a closed id fail with {@link
 * IllegalStateException}; closing here is idempotent.
 */
final class NativeHandle implements AutoCloseable {
    private final long id;

    /** The memory the backend runs in, given up when it closes. */
    private final SlotMemory memory;

    private volatile boolean closed;

    NativeHandle(long id, SlotMemory memory) {
        this.id = id;
        this.memory = memory;
    }

    /** The shared memory budget the backend runs in (its size is 0 if it has its own). */
    SlotMemory memory() {
        return memory;
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
            try {
                NativeBridge.close(id);
            } finally {
                try {
                    memory.close();
                } catch (Exception e) {
                    throw new IllegalStateException("giving up the backend's memory: " + e, e);
                }
            }
        }
    }
}
