package io.statebackend.internal;

import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.util.List;
import org.apache.flink.core.fs.FSDataInputStream;
import org.apache.flink.runtime.state.IncrementalKeyedStateHandle.HandleAndLocalPath;
import org.apache.flink.runtime.state.IncrementalRemoteKeyedStateHandle;
import org.apache.flink.runtime.state.StreamStateHandle;

/**
 * One snapshot as the native restore reads it: random access through {@link #read}, which the
 * native side calls (on the restoring thread) and whose bytes it copies out of {@link #chunk()}.
 * For an incremental snapshot this is its meta stream, and {@link #files()} are the stored RocksDB
 * files, each named by {@link #fileName()}. Streams open on first read.
 */
final class RestoreSource implements Closeable {
    private static final int CHUNK = 64 * 1024;

    private final String name;
    private final long length;
    private final StreamStateHandle handle;
    private final String fileName;
    private final RestoreSource[] files;
    private final byte[] chunk = new byte[CHUNK];
    private FSDataInputStream in;

    /** A single-stream snapshot (a full snapshot's {@code KeyGroupsStateHandle} delegate). */
    RestoreSource(StreamStateHandle handle) {
        this(handle, null, null);
    }

    private RestoreSource(StreamStateHandle handle, String fileName, RestoreSource[] files) {
        this.name = handle.toString();
        this.length = handle.getStateSize();
        this.handle = handle;
        this.fileName = fileName;
        this.files = files;
    }

    /** An incremental snapshot: its meta stream and its shared and private files. */
    static RestoreSource of(IncrementalRemoteKeyedStateHandle snapshot) {
        List<HandleAndLocalPath> shared = snapshot.getSharedState();
        List<HandleAndLocalPath> own = snapshot.getPrivateState();
        RestoreSource[] files = new RestoreSource[shared.size() + own.size()];
        int i = 0;
        for (List<HandleAndLocalPath> part : List.of(shared, own)) {
            for (HandleAndLocalPath file : part) {
                files[i++] = new RestoreSource(file.getHandle(), file.getLocalPath(), null);
            }
        }
        return new RestoreSource(snapshot.getMetaDataStateHandle(), null, files);
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

    /** The file's name in the RocksDB directory (files of incremental snapshots only). */
    String fileName() {
        return fileName;
    }

    /** The stored files of an incremental snapshot; null for a single-stream snapshot. */
    RestoreSource[] files() {
        return files;
    }

    /** Fills {@code chunk[0, length)} from {@code position}. */
    void read(long position, int length) throws IOException {
        if (in == null) {
            in = handle.openInputStream();
        }
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
        IOException failure = null;
        if (files != null) {
            for (RestoreSource file : files) {
                try {
                    file.close();
                } catch (IOException e) {
                    failure = e;
                }
            }
        }
        if (in != null) {
            in.close();
            in = null;
        }
        if (failure != null) {
            throw failure;
        }
    }
}
