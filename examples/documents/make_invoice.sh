#!/usr/bin/env bash
# Regenerates invoice.png and invoice.pdf (the same page) with ImageMagick
# and the DejaVu fonts (packages imagemagick, fonts-dejavu-core). Debian's
# ImageMagick policy forbids writing PDF, so the PDF is assembled here: one
# page holding the invoice as a JPEG image (DCTDecode), sized for 300 dpi.
set -euo pipefail
cd "$(dirname "$0")"

dpi=300
w=2550 # 8.5 in
h=1800 # 6 in
sans=DejaVu-Sans
bold=DejaVu-Sans-Bold
row() { # y, then the four cells of a line item
  printf -- "-annotate +150+%d %q -annotate +1250+%d %q -annotate +1550+%d %q -annotate +2050+%d %q " \
    "$1" "$2" "$1" "$3" "$1" "$4" "$1" "$5"
}
eval convert -density $dpi -units PixelsPerInch -size ${w}x${h} xc:white \
  -fill black -font $bold -pointsize 20 -annotate +150+200 "'ACME Office Supplies Ltd.'" \
  -font $sans -pointsize 11 \
  -annotate +150+280 "'12 Harbour Road, Bristol BS1 4ST'" \
  -font $bold -pointsize 16 -annotate +1750+200 "'INVOICE'" \
  -font $sans -pointsize 11 \
  -annotate +1750+280 "'Invoice number: INV-2024-0042'" \
  -annotate +1750+340 "'Date: 2024-03-15'" \
  -annotate +150+480 "'Bill to: Northwind Traders, 8 Market Street, Leeds'" \
  -font $bold "$(row 640 Item Qty 'Unit price' Amount)" \
  -font $sans \
  "$(row 740 'A4 copy paper (box)' 4 24.50 98.00)" \
  "$(row 820 'Ballpoint pens (pack of 50)' 2 12.75 25.50)" \
  "$(row 900 'Stapler, heavy duty' 1 18.90 18.90)" \
  -annotate +1550+1060 "'Subtotal'" -annotate +2050+1060 "'142.40'" \
  -annotate +1550+1140 "'VAT 20%'" -annotate +2050+1140 "'28.48'" \
  -font $bold -annotate +1550+1240 "'Total due'" -annotate +2050+1240 "'GBP 170.88'" \
  -font $sans -pointsize 9 \
  -annotate +150+1600 "'Payment within 30 days to account 12345678, sort code 20-00-00.'" \
  -colorspace Gray -depth 8 invoice.png

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
convert invoice.png -quality 90 "$tmp/invoice.jpg"
jpg_len=$(stat -c %s "$tmp/invoice.jpg")
pw=$((w * 72 / dpi)) # page size in points
ph=$((h * 72 / dpi))
content="q $pw 0 0 $ph 0 0 cm /Im0 Do Q"

pdf=invoice.pdf
offsets=()
obj() { offsets+=("$(stat -c %s "$pdf")"); printf '%d 0 obj\n' "${#offsets[@]}" >>"$pdf"; }
printf '%%PDF-1.4\n' >"$pdf"
obj; printf '<< /Type /Catalog /Pages 2 0 R >>\nendobj\n' >>"$pdf"
obj; printf '<< /Type /Pages /Count 1 /Kids [3 0 R] >>\nendobj\n' >>"$pdf"
obj; printf '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>\nendobj\n' \
  "$pw" "$ph" >>"$pdf"
obj; printf '<< /Length %d >>\nstream\n%s\nendstream\nendobj\n' "$((${#content} + 1))" "$content" >>"$pdf"
obj; printf '<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n' \
  "$w" "$h" "$jpg_len" >>"$pdf"
cat "$tmp/invoice.jpg" >>"$pdf"
printf '\nendstream\nendobj\n' >>"$pdf"
xref=$(stat -c %s "$pdf")
{
  printf 'xref\n0 %d\n0000000000 65535 f \n' "$((${#offsets[@]} + 1))"
  for o in "${offsets[@]}"; do printf '%010d 00000 n \n' "$o"; done
  printf 'trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n' "$((${#offsets[@]} + 1))" "$xref"
} >>"$pdf"
echo "wrote invoice.png and invoice.pdf"
