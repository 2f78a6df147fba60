package io.statebackend.internal;

import java.io.IOException;
import java.io.UTFDataFormatException;
import java.nio.ByteBuffer;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.core.memory.MemorySegment;
import org.apache.flink.core.memory.MemorySegmentFactory;

/**
 * Flink's {@link DataOutputView} writing straight into a direct {@link ByteBuffer} at {@link
 * #position()}: serializers write the fields of a state access where the native side reads them,
 * without an intermediate {@code byte[]}. The buffer grows (a new, larger one) when a write does
 * not fit; {@link #grown()} tells the owner to register the new one. Writes go through a Flink
 * {@link MemorySegment} over the buffer: its big-endian puts are plain memory stores, where a
 * direct {@code ByteBuffer}'s take a scoped-memory check each (list writes do 100s per call).
 */
final class DirectOutputView implements DataOutputView {
    private ByteBuffer buffer;
    private MemorySegment segment;
    private int position;
    private boolean grown;

    DirectOutputView(int capacity) {
        buffer = ByteBuffer.allocateDirect(capacity);
        segment = MemorySegmentFactory.wrapOffHeapMemory(buffer);
    }

    ByteBuffer buffer() {
        return buffer;
    }

    int position() {
        return position;
    }

    void setPosition(int position) {
        ensure(position - this.position);
        this.position = position;
    }

    /** Whether the buffer was replaced since the last {@link #registered()}. */
    boolean grown() {
        return grown;
    }

    /** The current buffer is the one the native side knows. */
    void registered() {
        grown = false;
    }

    private void ensure(int more) {
        if (position + more > buffer.capacity()) {
            grow(more);
        }
    }

    private void grow(int more) {
        long needed = (long) position + more;
        if (needed > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("a state access of " + needed + " bytes");
        }
        int capacity =
                (int) Math.min(Integer.MAX_VALUE - 8, Math.max(needed, 2L * buffer.capacity()));
        ByteBuffer bigger = ByteBuffer.allocateDirect(capacity);
        // All of it: bytes past the position may be kept fields (the serialized namespace).
        bigger.put(0, buffer, 0, buffer.capacity());
        buffer = bigger;
        segment = MemorySegmentFactory.wrapOffHeapMemory(bigger);
        grown = true;
    }

    /** Writes {@code b} at {@code index}, below the position (a field's length in front of it). */
    void putAt(int index, byte b) {
        segment.put(index, b);
    }

    /** Moves {@code len} bytes at {@code from} to {@code to} (the ranges may overlap). */
    void move(int from, int to, int len) {
        if (to > from) {
            ensure(to + len - position);
        }
        // A view of the source region: ByteBuffer's bulk put copies as through an
        // intermediate buffer when source and target share memory.
        buffer.put(to, buffer.duplicate(), from, len);
    }

    @Override
    public void write(int b) {
        ensure(1);
        segment.put(position++, (byte) b);
    }

    @Override
    public void write(byte[] b) {
        write(b, 0, b.length);
    }

    @Override
    public void write(byte[] b, int off, int len) {
        ensure(len);
        segment.put(position, b, off, len);
        position += len;
    }

    @Override
    public void writeBoolean(boolean v) {
        write(v ? 1 : 0);
    }

    @Override
    public void writeByte(int v) {
        write(v);
    }

    @Override
    public void writeShort(int v) {
        ensure(2);
        segment.putShortBigEndian(position, (short) v);
        position += 2;
    }

    @Override
    public void writeChar(int v) {
        ensure(2);
        segment.putCharBigEndian(position, (char) v);
        position += 2;
    }

    @Override
    public void writeInt(int v) {
        ensure(4);
        segment.putIntBigEndian(position, v);
        position += 4;
    }

    @Override
    public void writeLong(long v) {
        ensure(8);
        segment.putLongBigEndian(position, v);
        position += 8;
    }

    @Override
    public void writeFloat(float v) {
        writeInt(Float.floatToIntBits(v));
    }

    @Override
    public void writeDouble(double v) {
        writeLong(Double.doubleToLongBits(v));
    }

    @Override
    public void writeBytes(String s) {
        int len = s.length();
        ensure(len);
        for (int i = 0; i < len; i++) {
            segment.put(position++, (byte) s.charAt(i));
        }
    }

    @Override
    public void writeChars(String s) {
        int len = s.length();
        ensure(2 * len);
        for (int i = 0; i < len; i++) {
            segment.putCharBigEndian(position, s.charAt(i));
            position += 2;
        }
    }

    /** {@link java.io.DataOutput}'s modified UTF-8: a two-byte length, then the bytes. */
    @Override
    public void writeUTF(String s) throws IOException {
        int len = s.length();
        int utfLen = len;
        for (int i = 0; i < len; i++) {
            char c = s.charAt(i);
            if (c == 0 || c > 0x7f) {
                utfLen += c > 0x7ff ? 2 : 1;
            }
        }
        if (utfLen > 0xffff) {
            throw new UTFDataFormatException("encoded string too long: " + utfLen + " bytes");
        }
        ensure(2 + utfLen);
        segment.putShortBigEndian(position, (short) utfLen);
        position += 2;
        for (int i = 0; i < len; i++) {
            char c = s.charAt(i);
            if (c != 0 && c <= 0x7f) {
                segment.put(position++, (byte) c);
            } else if (c > 0x7ff) {
                segment.put(position++, (byte) (0xe0 | ((c >> 12) & 0x0f)));
                segment.put(position++, (byte) (0x80 | ((c >> 6) & 0x3f)));
                segment.put(position++, (byte) (0x80 | (c & 0x3f)));
            } else {
                segment.put(position++, (byte) (0xc0 | ((c >> 6) & 0x1f)));
                segment.put(position++, (byte) (0x80 | (c & 0x3f)));
            }
        }
    }

    @Override
    public void skipBytesToWrite(int numBytes) {
        ensure(numBytes);
        position += numBytes;
    }

    @Override
    public void write(DataInputView source, int numBytes) throws IOException {
        ensure(numBytes);
        for (int i = 0; i < numBytes; i++) {
            segment.put(position++, source.readByte());
        }
    }
}
