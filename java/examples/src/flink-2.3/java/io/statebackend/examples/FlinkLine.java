package io.statebackend.examples;

import io.statebackend.AbstractNativeBackend;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * What the examples write differently on each Flink line, this file for Flink 2.3
 * (src/flink-2.3/java, built by the pom's {@code flink-2.3} profile; Flink 1.20's is
 * src/flink-1.20/java). Everything else in the examples is the same source on both lines.
 */
final class FlinkLine {
    /** How {@link #chooseBackend} chooses the backend, for the demo's output. */
    static final String HOW_BACKEND_IS_CHOSEN =
            "by configuration: env.configure(backend.toConfiguration())";

    private FlinkLine() {}

    /**
     * Chooses {@code backend} for the job the way Flink 2.x jobs do, by configuration: {@code
     * StreamExecutionEnvironment#setStateBackend} is gone, and {@code toConfiguration()} holds
     * {@code state.backend.type: io.statebackend.NativeRocksDBBackendFactory}, the checkpoint
     * directory and the backend's settings; the factory builds an equal backend in each task.
     * Without code, the same two keys in Flink's config.yaml do it.
     */
    static void chooseBackend(StreamExecutionEnvironment env, AbstractNativeBackend backend) {
        env.configure(backend.toConfiguration());
    }

    /** Nothing to add on Flink 2: its Sink V2 has only {@code createWriter(WriterInitContext)}. */
    abstract static class SinkBase<T> implements Sink<T> {
        private static final long serialVersionUID = 1L;
    }
}
