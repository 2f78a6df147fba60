package io.statebackend.examples;

import io.statebackend.AbstractNativeBackend;
import java.io.IOException;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * What the examples write differently on each Flink line, this file for Flink 1.20
 * (src/flink-1.20/java; Flink 2.3's is src/flink-2.3/java, built by the pom's {@code flink-2.3}
 * profile). Everything else in the examples is the same source on both lines.
 */
final class FlinkLine {
    /** How {@link #chooseBackend} chooses the backend, for the demo's output. */
    static final String HOW_BACKEND_IS_CHOSEN = "in code: env.setStateBackend(backend)";

    private FlinkLine() {}

    /**
     * Chooses {@code backend} for the job the way Flink 1.20 jobs do in code. Deprecated in Flink
     * 1.20 in favour of configuration ({@code state.backend.type:
     * io.statebackend.NativeRocksDBBackendFactory}, see docs/flink.md), still the plain way to pick
     * a backend in code; gone in Flink 2.
     */
    @SuppressWarnings("deprecation")
    static void chooseBackend(StreamExecutionEnvironment env, AbstractNativeBackend backend) {
        env.setStateBackend(backend);
    }

    /**
     * A Sink V2 whose writers come from {@link #writer}: Flink 1.20 still declares {@code
     * createWriter(Sink.InitContext)}, abstract though no longer called (it calls {@code
     * createWriter(WriterInitContext)}, which the sink implements); Flink 2 dropped it.
     */
    abstract static class SinkBase<T> implements Sink<T> {
        private static final long serialVersionUID = 1L;

        abstract SinkWriter<T> writer(org.apache.flink.api.connector.sink2.InitContext context)
                throws IOException;

        @Deprecated
        @Override
        public SinkWriter<T> createWriter(InitContext context) throws IOException {
            return writer(context);
        }
    }
}
