package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.IllegalConfigurationException;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.StateBackendLoader;
import org.junit.jupiter.api.Test;

/** Choosing a backend from the configuration, as Flink's StateBackendLoader does. */
class FactoryTest {
    private static StateBackend load(Configuration conf) throws Exception {
        return StateBackendLoader.loadStateBackendFromConfig(
                conf, FactoryTest.class.getClassLoader(), null);
    }

    @Test
    void rocksDbFactoryReadsTheCheckpointDirectory() throws Exception {
        Configuration conf = new Configuration();
        conf.set(StateBackendOptions.STATE_BACKEND, NativeRocksDBBackendFactory.class.getName());
        conf.setString("state.checkpoints.dir", "file:///tmp/ckpt");
        conf.setString("state.backend.incremental", "true");
        StateBackend backend = load(conf);
        assertThat(backend).isInstanceOf(NativeRocksDBBackend.class);
        assertThat(((NativeRocksDBBackend) backend).getCheckpointUri())
                .isEqualTo("file:///tmp/ckpt");
        assertThat(((NativeRocksDBBackend) backend).isIncremental()).isTrue();
    }

    @Test
    void fsFactoryHonoursTheClassicKey() throws Exception {
        Configuration conf = new Configuration();
        conf.set(StateBackendOptions.STATE_BACKEND, NativeFsBackendFactory.class.getName());
        conf.setString("state.backend.fs.checkpointdir", "file:///tmp/classic");
        StateBackend backend = load(conf);
        assertThat(((NativeFsBackend) backend).getCheckpointUri()).isEqualTo("file:///tmp/classic");
    }

    @Test
    void memoryFactoryReadsTheSizeLimit() throws Exception {
        Configuration conf = new Configuration();
        conf.set(StateBackendOptions.STATE_BACKEND, NativeMemoryBackendFactory.class.getName());
        conf.setString("state.backend.native.memory.max-state-size", "1 mb");
        StateBackend backend = load(conf);
        assertThat(((NativeMemoryBackend) backend).getMaxStateSize()).isEqualTo(1 << 20);
    }

    @Test
    void missingDirectoryIsAClearError() {
        Configuration conf = new Configuration();
        conf.set(StateBackendOptions.STATE_BACKEND, NativeFsBackendFactory.class.getName());
        assertThatThrownBy(() -> load(conf))
                .isInstanceOf(IllegalConfigurationException.class)
                .hasStackTraceContaining("state.checkpoints.dir");
    }
}
