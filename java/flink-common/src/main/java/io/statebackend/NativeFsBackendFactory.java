package io.statebackend;

import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.IllegalConfigurationException;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.runtime.state.StateBackendFactory;

/**
 * {@code state.backend.type: io.statebackend.NativeFsBackendFactory}, with the checkpoint URI from
 * Flink's checkpoint directory option ({@code state.checkpoints.dir} on Flink 1.20, {@code
 * execution.checkpointing.dir} on 2.x; each line also reads the other's key).
 */
public class NativeFsBackendFactory implements StateBackendFactory<NativeFsBackend> {
    @Override
    public NativeFsBackend createFromConfig(ReadableConfig config, ClassLoader classLoader) {
        return new NativeFsBackend(requireDirectory(config, "NativeFsBackend"))
                .configure(config, classLoader);
    }

    static String requireDirectory(ReadableConfig config, String backend) {
        String dir = AbstractNativeBackend.configuredCheckpointDirectory(config);
        if (dir == null || dir.trim().isEmpty()) {
            throw new IllegalConfigurationException(
                    backend
                            + " needs a checkpoint directory: set "
                            + CheckpointingOptions.CHECKPOINTS_DIRECTORY.key()
                            + ", e.g. file:///data/flink/checkpoints");
        }
        return dir;
    }
}
