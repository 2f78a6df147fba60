package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.apache.flink.configuration.CheckpointingOptions;
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
    void rocksDbOptionsComeFromTheConfigurationAndTheBackend() throws Exception {
        Configuration conf = new Configuration();
        conf.set(StateBackendOptions.STATE_BACKEND, NativeRocksDBBackendFactory.class.getName());
        conf.setString("state.checkpoints.dir", "file:///tmp/ckpt");
        conf.setString("state.backend.rocksdb.write-cache.size", "64 mb");
        conf.setString("state.backend.rocksdb.block.blocksize", "16 kb");
        conf.setString("state.backend.rocksdb.localdir", "/tmp/flink-rocksdb");
        NativeRocksDBBackend configured = (NativeRocksDBBackend) load(conf);
        assertThat(configured.getRocksDBOptions())
                .containsEntry("state.backend.rocksdb.write-cache.size", "64 mb")
                .containsEntry("state.backend.rocksdb.block.blocksize", "16 kb")
                .doesNotContainKey("state.backend.rocksdb.localdir");
        // Set on the backend, an option wins over the configuration.
        NativeRocksDBBackend set =
                new NativeRocksDBBackend("file:///tmp/ckpt")
                        .setRocksDBOption("state.backend.rocksdb.write-cache.size", "0");
        assertThat(set.configure(conf, getClass().getClassLoader()).getRocksDBOptions())
                .containsEntry("state.backend.rocksdb.write-cache.size", "0")
                .containsEntry("state.backend.rocksdb.block.blocksize", "16 kb");
        assertThatThrownBy(() -> set.setRocksDBOption("state.backend.rocksdb.no-such-option", "1"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("state.backend.rocksdb.no-such-option");
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
                .hasStackTraceContaining(CheckpointingOptions.CHECKPOINTS_DIRECTORY.key());
    }

    @Test
    void factoriesReadTheFlink2Keys() throws Exception {
        Configuration conf = new Configuration();
        conf.setString("state.backend.type", NativeRocksDBBackendFactory.class.getName());
        conf.setString("execution.checkpointing.dir", "file:///tmp/ckpt2");
        conf.setString("execution.checkpointing.incremental", "true");
        NativeRocksDBBackend backend = (NativeRocksDBBackend) load(conf);
        assertThat(backend.getCheckpointUri()).isEqualTo("file:///tmp/ckpt2");
        assertThat(backend.isIncremental()).isTrue();
    }

    /** What toConfiguration gives, read back by the factory, is an equal backend. */
    @Test
    void toConfigurationRoundTripsThroughTheFactories() throws Exception {
        NativeRocksDBBackend rocks =
                new NativeRocksDBBackend("file:///tmp/ckpt3", true)
                        .setRocksDBOption("state.backend.rocksdb.write-cache.size", "8 mb");
        NativeRocksDBBackend rocksBack = (NativeRocksDBBackend) load(rocks.toConfiguration());
        assertThat(rocksBack.getCheckpointUri()).isEqualTo("file:///tmp/ckpt3");
        assertThat(rocksBack.isIncremental()).isTrue();
        assertThat(rocksBack.getRocksDBOptions()).isEqualTo(rocks.getRocksDBOptions());
        assertThat(
                        ((NativeRocksDBBackend)
                                        load(
                                                new NativeRocksDBBackend("file:///tmp/ckpt3", false)
                                                        .toConfiguration()))
                                .isIncremental())
                .isFalse();

        NativeFsBackend fsBack =
                (NativeFsBackend) load(new NativeFsBackend("file:///tmp/ckpt4").toConfiguration());
        assertThat(fsBack.getCheckpointUri()).isEqualTo("file:///tmp/ckpt4");

        NativeMemoryBackend memoryBack =
                (NativeMemoryBackend) load(new NativeMemoryBackend(12345).toConfiguration());
        assertThat(memoryBack.getMaxStateSize()).isEqualTo(12345);
    }

    /** State V2's own asynchronous keyed backend: off by default, on by configuration. */
    @Test
    void asyncKeyedBackendIsChosenByConfiguration() throws Exception {
        Configuration conf = new Configuration();
        conf.setString("state.backend.type", NativeFsBackendFactory.class.getName());
        conf.setString("state.checkpoints.dir", "file:///tmp/ckpt5");
        AbstractNativeBackend byDefault = (AbstractNativeBackend) load(conf);
        assertThat(byDefault.isAsyncKeyedBackendEnabled()).isFalse();
        assertThat(byDefault.supportsAsyncKeyedStateBackend()).isFalse();

        conf.setString("state.backend.native.async-keyed-backend", "true");
        AbstractNativeBackend enabled = (AbstractNativeBackend) load(conf);
        assertThat(enabled.isAsyncKeyedBackendEnabled()).isTrue();
        // And it survives toConfiguration, as the other settings do.
        assertThat(
                        ((AbstractNativeBackend) load(enabled.toConfiguration()))
                                .isAsyncKeyedBackendEnabled())
                .isTrue();
    }
}
