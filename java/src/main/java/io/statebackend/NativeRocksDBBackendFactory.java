package io.statebackend;

import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.runtime.state.StateBackendFactory;

/**
 * {@code state.backend.type: io.statebackend.NativeRocksDBBackendFactory}, with the checkpoint URI
 * from {@code state.checkpoints.dir} (or the classic {@code state.backend.fs.checkpointdir}) and
 * {@code state.backend.incremental}.
 */
public class NativeRocksDBBackendFactory implements StateBackendFactory<NativeRocksDBBackend> {
    @Override
    public NativeRocksDBBackend createFromConfig(ReadableConfig config, ClassLoader classLoader) {
        return new NativeRocksDBBackend(
                        NativeFsBackendFactory.requireDirectory(config, "NativeRocksDBBackend"),
                        config.get(CheckpointingOptions.INCREMENTAL_CHECKPOINTS))
                .configure(config, classLoader);
    }
}
