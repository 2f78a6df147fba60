package io.statebackend.internal;

import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import org.apache.flink.core.fs.FSDataInputStream;
import org.apache.flink.runtime.state.StreamStateHandle;

/**
 * One single-stream snapshot as the native restore reads it: random access through {@link #read},
 * which the native side calls (on the restoring thread) and whose bytes it copies out of {@link
 * #chunk()}.
 */
final class RestoreSource implements Closeable {
    private static final int CHUNK = 64 * 1024;

    private final String name;
    private final long length;
    private final FSDataInputStream in;
    private final byte[] chunk = new byte[CHUNK];

    RestoreSource(StreamStateHandle handle) throws IOException {
        this.name = handle.toString();
        this.length = handle.getStateSize();
        this.in = handle.openInputStream();
    }

    String name() {
        return name;
    }

    long length() {
        return length;
    }

    byte[] chunk() {
        return chunk;
    }

    /** Fills {@code chunk[0, length)} from {@code position}. */
    void read(long position, int length) throws IOException {
        if (in.getPos() != position) {
            in.seek(position);
        }
        int done = 0;
        while (done < length) {
            int n = in.read(chunk, done, length - done);
            if (n < 0) {
                throw new EOFException(name + ": unexpected end at " + (position + done));
            }
            done += n;
        }
    }

    @Override
    public void close() throws IOException {
        in.close();
    }
}
