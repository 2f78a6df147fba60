package io.statebackend;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.hashmap.HashMapStateBackend;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * How a test job chooses its backend on Flink 2.3, which has no {@code
 * StreamExecutionEnvironment#setStateBackend}: by configuration, as 2.x users do.
 */
final class TestJobs {
    private TestJobs() {}

    static void setStateBackend(StreamExecutionEnvironment env, StateBackend backend) {
        if (backend instanceof AbstractNativeBackend) {
            env.configure(((AbstractNativeBackend) backend).toConfiguration());
        } else if (backend instanceof HashMapStateBackend) {
            env.configure(flinkBackend("hashmap"));
        } else if (backend instanceof EmbeddedRocksDBStateBackend) {
            env.configure(flinkBackend("rocksdb"));
        } else {
            throw new IllegalArgumentException("no configuration for " + backend);
        }
    }

    private static Configuration flinkBackend(String type) {
        Configuration config = new Configuration();
        config.set(StateBackendOptions.STATE_BACKEND, type);
        return config;
    }
}
