package io.statebackend;

import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/** How a test job chooses its backend on Flink 1.20: in code, as 1.20 users do. */
final class TestJobs {
    private TestJobs() {}

    static void setStateBackend(StreamExecutionEnvironment env, StateBackend backend) {
        env.setStateBackend(backend);
    }
}
